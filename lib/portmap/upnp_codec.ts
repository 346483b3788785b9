/**
 * UPnP-IGD, the subset a chat client needs, as pure text functions: the SSDP search for an
 * Internet Gateway Device and its answer, the device description's WAN connection service, and
 * the SOAP calls `GetExternalIPAddress`, `AddPortMapping` and `DeletePortMapping` with their
 * answers and faults. No I/O here (`upnp_client.ts` has it); every parser returns undefined or a
 * fault for what it cannot read, never throws (they are fuzzed).
 *
 * @example
 * ```ts
 * import { parseSsdpResponse, soapRequest } from "./upnp_codec.ts";
 *
 * parseSsdpResponse("HTTP/1.1 200 OK\r\nLOCATION: http://10.1.0.1:5000/rootDesc.xml\r\n\r\n");
 * // "http://10.1.0.1:5000/rootDesc.xml"
 * soapRequest("urn:schemas-upnp-org:service:WANIPConnection:1", "GetExternalIPAddress", []);
 * ```
 * @module
 */

/** Where SSDP searches go. */
export const SSDP_ADDRESS = "239.255.255.250";
/** SSDP's port. */
export const SSDP_PORT = 1900;

/** The services that map ports, best first. */
export const WAN_SERVICES: readonly string[] = [
  "urn:schemas-upnp-org:service:WANIPConnection:2",
  "urn:schemas-upnp-org:service:WANIPConnection:1",
  "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

/**
 * An SSDP M-SEARCH for Internet Gateway Devices (answers within `mx` seconds).
 *
 * @example
 * ```ts
 * new TextDecoder().decode(ssdpSearch()).startsWith("M-SEARCH * HTTP/1.1"); // true
 * ```
 */
export function ssdpSearch(mx = 1): Uint8Array {
  return new TextEncoder().encode(
    "M-SEARCH * HTTP/1.1\r\n" +
      `HOST: ${SSDP_ADDRESS}:${SSDP_PORT}\r\n` +
      'MAN: "ssdp:discover"\r\n' +
      `MX: ${mx}\r\n` +
      "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n",
  );
}

/**
 * The LOCATION of an SSDP answer (`HTTP/1.1 200 OK`), if it is one with an http URL.
 *
 * @example
 * ```ts
 * parseSsdpResponse("HTTP/1.1 200 OK\r\nLocation: http://10.0.0.1/d.xml\r\n\r\n"); // "http://10.0.0.1/d.xml"
 * ```
 */
export function parseSsdpResponse(text: string): string | undefined {
  const lines = text.split(/\r?\n/);
  if (!/^HTTP\/1\.[01] 200\b/.test(lines[0] ?? "")) return undefined;
  for (const line of lines.slice(1)) {
    const m = /^location:\s*(\S+)\s*$/i.exec(line);
    if (m && /^http:\/\/[^\s/]+\/?/i.test(m[1]) && URL.canParse(m[1])) return m[1];
  }
  return undefined;
}

/** A WAN connection service of a device description. */
export interface WanService {
  serviceType: string;
  /** Absolute control URL. */
  controlUrl: string;
}

/**
 * The best port-mapping service of a device description (see {@linkcode WAN_SERVICES}), its
 * control URL resolved against `URLBase` or the description's own URL.
 *
 * @example
 * ```ts
 * const xml = "<root><device><serviceList><service>" +
 *   "<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>" +
 *   "<controlURL>/ctl/IPConn</controlURL></service></serviceList></device></root>";
 * findWanService(xml, "http://10.1.0.1:5000/rootDesc.xml")?.controlUrl;
 * // "http://10.1.0.1:5000/ctl/IPConn"
 * ```
 */
export function findWanService(xml: string, location: string): WanService | undefined {
  const base = tagText(xml, "URLBase") || location;
  let best: { rank: number; service: WanService } | undefined;
  for (const m of xml.matchAll(/<service>([\s\S]*?)<\/service>/gi)) {
    const serviceType = tagText(m[1], "serviceType");
    const control = tagText(m[1], "controlURL");
    const rank = WAN_SERVICES.indexOf(serviceType ?? "");
    if (rank < 0 || !control) continue;
    let controlUrl: string;
    try {
      controlUrl = new URL(control, base).href;
    } catch {
      continue;
    }
    if (!controlUrl.startsWith("http://")) continue;
    if (!best || rank < best.rank) {
      best = { rank, service: { serviceType: serviceType!, controlUrl } };
    }
  }
  return best?.service;
}

/**
 * The body and SOAPAction header of a SOAP call.
 *
 * @example
 * ```ts
 * const { body, soapAction } = soapRequest(WAN_SERVICES[1], "DeletePortMapping", [
 *   ["NewRemoteHost", ""], ["NewExternalPort", "4000"], ["NewProtocol", "UDP"],
 * ]);
 * ```
 */
export function soapRequest(
  serviceType: string,
  action: string,
  args: readonly [string, string][],
): { body: string; soapAction: string } {
  const params = args.map(([k, v]) => `<${k}>${escapeXml(v)}</${k}>`).join("");
  const body = '<?xml version="1.0"?>\r\n' +
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" ' +
    's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>' +
    `<u:${action} xmlns:u="${serviceType}">${params}</u:${action}>` +
    "</s:Body></s:Envelope>\r\n";
  return { body, soapAction: `"${serviceType}#${action}"` };
}

/** A SOAP answer: the action's out-arguments, or the UPnP fault it reported. */
export type SoapAnswer =
  | { ok: true; values: Record<string, string> }
  | { ok: false; code: number; description: string };

/**
 * Reads a SOAP answer to `action`: `<u:ACTIONResponse>`'s children, or a `UPnPError` fault.
 *
 * @example
 * ```ts
 * parseSoapResponse(
 *   "<s:Envelope><s:Body><u:GetExternalIPAddressResponse>" +
 *     "<NewExternalIPAddress>203.0.113.2</NewExternalIPAddress>" +
 *     "</u:GetExternalIPAddressResponse></s:Body></s:Envelope>",
 *   "GetExternalIPAddress",
 * ); // { ok: true, values: { NewExternalIPAddress: "203.0.113.2" } }
 * ```
 */
export function parseSoapResponse(xml: string, action: string): SoapAnswer {
  const fault = /<(?:\w+:)?UPnPError\b[^>]*>([\s\S]*?)<\/(?:\w+:)?UPnPError>/i.exec(xml);
  if (fault) {
    const code = Number(tagText(fault[1], "errorCode"));
    return {
      ok: false,
      code: Number.isInteger(code) ? code : 0,
      description: tagText(fault[1], "errorDescription") ?? "",
    };
  }
  // An action without out-arguments may answer `<u:ACTIONResponse xmlns:u="..."/>`.
  const empty = new RegExp(`<(?:\\w+:)?${action}Response\\b[^>]*/>`);
  if (empty.test(xml)) return { ok: true, values: {} };
  const re = new RegExp(
    `<(?:\\w+:)?${action}Response\\b[^>]*>([\\s\\S]*?)</(?:\\w+:)?${action}Response>`,
  );
  const m = re.exec(xml);
  if (!m) return { ok: false, code: 0, description: `no ${action}Response in the answer` };
  const values: Record<string, string> = {};
  for (const arg of m[1].matchAll(/<(\w+)>([^<]*)<\/\1>/g)) values[arg[1]] = unescapeXml(arg[2]);
  return { ok: true, values };
}

function tagText(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}>\\s*([^<]*?)\\s*</${tag}>`, "i").exec(xml);
  return m ? unescapeXml(m[1]) : undefined;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function unescapeXml(text: string): string {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'").replace(/&amp;/g, "&");
}
