// UPnP-IGD's texts: SSDP, miniupnpd 2.3.1's device description and SOAP answers (captured in
// the lab), faults, and 100,000 random or mutated answers that must never make a parser throw.
import assert from "node:assert/strict";
import {
  findWanService,
  parseSoapResponse,
  parseSsdpResponse,
  soapRequest,
  ssdpSearch,
} from "../../lib/portmap/upnp_codec.ts";
import { mutate, randomBytes } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const SSDP_ANSWER = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n" +
  "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
  "USN: uuid:d47e4750::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
  "EXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n" +
  "LOCATION: http://10.1.0.1:43643/rootDesc.xml\r\n\r\n";

const DESCRIPTION = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>1</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
<controlURL>/ctl/L3F</controlURL></service></serviceList>
<deviceList><device><deviceList><device><serviceList>
<service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType><controlURL>/ctl/PPP</controlURL></service>
<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL><SCPDURL>/WANIPCn.xml</SCPDURL></service>
</serviceList></device></deviceList></device></deviceList></device></root>`;

const SERVICE = "urn:schemas-upnp-org:service:WANIPConnection:1";

Deno.test("upnp: the SSDP search, and the LOCATION of an answer", () => {
  const text = new TextDecoder().decode(ssdpSearch());
  assert.match(text, /^M-SEARCH \* HTTP\/1\.1\r\nHOST: 239\.255\.255\.250:1900\r\n/);
  assert.match(text, /\r\nMAN: "ssdp:discover"\r\n/);
  assert.ok(text.endsWith("\r\n\r\n"));
  assert.equal(parseSsdpResponse(SSDP_ANSWER), "http://10.1.0.1:43643/rootDesc.xml");
  assert.equal(parseSsdpResponse(SSDP_ANSWER.replace("200 OK", "404 Not Found")), undefined);
  assert.equal(parseSsdpResponse(SSDP_ANSWER.replace("http://", "file://")), undefined);
  assert.equal(parseSsdpResponse("NOTIFY * HTTP/1.1\r\nLOCATION: http://x/\r\n"), undefined);
});

Deno.test("upnp: the WAN IP connection service of miniupnpd's description", () => {
  assert.deepEqual(findWanService(DESCRIPTION, "http://10.1.0.1:43643/rootDesc.xml"), {
    serviceType: SERVICE,
    controlUrl: "http://10.1.0.1:43643/ctl/IPConn",
  });
  const based = DESCRIPTION.replace(
    "<specVersion>",
    "<URLBase>http://10.1.0.1:5000/</URLBase><specVersion>",
  );
  assert.equal(
    findWanService(based, "http://10.1.0.1:43643/rootDesc.xml")?.controlUrl,
    "http://10.1.0.1:5000/ctl/IPConn",
  );
  assert.equal(findWanService("<root/>", "http://10.1.0.1/"), undefined);
});

Deno.test("upnp: SOAP calls and answers, faults included", () => {
  const { body, soapAction } = soapRequest(SERVICE, "AddPortMapping", [
    ["NewExternalPort", "4000"],
    ["NewPortMappingDescription", "a<b&c"],
  ]);
  assert.equal(soapAction, `"${SERVICE}#AddPortMapping"`);
  assert.match(body, /<u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">/);
  assert.match(
    body,
    /<NewExternalPort>4000<\/NewExternalPort><NewPortMappingDescription>a&lt;b&amp;c</,
  );
  assert.deepEqual(
    parseSoapResponse(
      '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>' +
        `<u:GetExternalIPAddressResponse xmlns:u="${SERVICE}"><NewExternalIPAddress>203.0.113.2` +
        "</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>",
      "GetExternalIPAddress",
    ),
    { ok: true, values: { NewExternalIPAddress: "203.0.113.2" } },
  );
  assert.deepEqual(
    parseSoapResponse(
      "<s:Envelope><s:Body><s:Fault><faultcode>s:Client</faultcode><detail>" +
        '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode>' +
        "<errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail>" +
        "</s:Fault></s:Body></s:Envelope>",
      "AddPortMapping",
    ),
    { ok: false, code: 718, description: "ConflictInMappingEntry" },
  );
  // miniupnpd's answer to AddPortMapping: an empty element.
  assert.deepEqual(
    parseSoapResponse(
      `<s:Envelope><s:Body><u:AddPortMappingResponse xmlns:u="${SERVICE}"/></s:Body></s:Envelope>`,
      "AddPortMapping",
    ),
    { ok: true, values: {} },
  );
  assert.equal(parseSoapResponse("<html>no</html>", "AddPortMapping").ok, false);
});

Deno.test("fuzz: the UPnP parsers never throw on 100,000 inputs", () => {
  const rand = prng(1900);
  const seeds = [SSDP_ANSWER, DESCRIPTION].map((t) => new TextEncoder().encode(t));
  const dec = new TextDecoder();
  for (let i = 0; i < 100_000; i++) {
    const bytes = i % 2 === 0
      ? randomBytes(rand, 200)
      : mutate(rand, seeds[(i >> 1) % 2], [0x3c, 0x3e, 0x2f, 0x0d, 0x0a, 0x3a, 0x20]);
    const text = dec.decode(bytes);
    parseSsdpResponse(text);
    // Descriptions are long: every tenth input is enough to cover them.
    if (i % 10 === 1) findWanService(text, "http://10.1.0.1:1/d.xml");
    parseSoapResponse(text, "AddPortMapping");
  }
});
