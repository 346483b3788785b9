import assert from "node:assert/strict";
import { warmUpLinks } from "../../lib/peer/warm_up.ts";

Deno.test("warmUpLinks sends a message between two links in memory, and closes them", () => {
  // The test's sanitizers check that no link timer is left running.
  assert.equal(warmUpLinks(), true, "the message arrived and was acknowledged");
});
