/**
 * What a V8 heap snapshot is made of: the self size and count of its objects, grouped by kind
 * and constructor, largest first. It reads the `.heapsnapshot` files that
 * `bench:load --coordinator-heap` writes (or Chrome's DevTools saves), so that where the
 * coordinator's memory goes can be compared between commits in a terminal.
 *
 * ```sh
 * scripts/deno run -A scripts/heap_summary.ts coordinator-0.heapsnapshot [--top 30]
 * ```
 * @module
 */
import { parseArgs } from "node:util";

/** One group of a heap snapshot's objects. */
export interface HeapGroup {
  /** Kind and name, e.g. `object User`, `string`, `array (object elements)`. */
  group: string;
  count: number;
  /** The sum of their self sizes, in bytes. */
  bytes: number;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/**
 * Groups a heap snapshot's nodes by kind, and by constructor for objects and arrays (other
 * kinds' names are their contents: a string's text, a closure's function), largest first.
 *
 * @example Summing a snapshot
 * ```ts ignore
 * const groups = summarize(JSON.parse(await Deno.readTextFile("x.heapsnapshot")));
 * console.log(groups[0]); // { group: "object User", count: 10000, bytes: 960000 }
 * ```
 */
export function summarize(snapshot: Snapshot): HeapGroup[] {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const stride = fields.length;
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const groups = new Map<string, HeapGroup>();
  const { nodes, strings } = snapshot;
  for (let i = 0; i < nodes.length; i += stride) {
    const type = types[nodes[i + typeAt]];
    const named = type === "object" || type === "array" || type === "native" || type === "hidden";
    const group = named ? `${type} ${strings[nodes[i + nameAt]]}` : type;
    const g = groups.get(group) ?? { group, count: 0, bytes: 0 };
    g.count++;
    g.bytes += nodes[i + sizeAt];
    groups.set(group, g);
  }
  return [...groups.values()].sort((a, b) => b.bytes - a.bytes);
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { top: { type: "string", default: "30" } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) {
    console.error("usage: heap_summary.ts FILE.heapsnapshot [--top N]");
    Deno.exit(2);
  }
  const groups = summarize(JSON.parse(await Deno.readTextFile(positionals[0])));
  const total = groups.reduce((sum, g) => sum + g.bytes, 0);
  console.log(`${(total / 2 ** 20).toFixed(1)} MiB in all`);
  console.log("| MiB | count | bytes each | kind and constructor |");
  console.log("|---:|---:|---:|---|");
  for (const g of groups.slice(0, Number(values.top))) {
    console.log(
      `| ${(g.bytes / 2 ** 20).toFixed(2)} | ${g.count} | ${(g.bytes / g.count).toFixed(0)} | ${
        g.group.slice(0, 70)
      } |`,
    );
  }
}
