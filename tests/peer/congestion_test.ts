import assert from "node:assert/strict";
import { CongestionControl, INITIAL_CWND, MIN_RECEIVE_WINDOW } from "../../lib/peer/congestion.ts";

Deno.test("congestion: starts at 8 segments against an assumed window of 8", () => {
  const cc = new CongestionControl();
  assert.equal(cc.cwnd, INITIAL_CWND);
  assert.equal(cc.peerWindow, MIN_RECEIVE_WINDOW);
  assert.ok(cc.cwndOpen(7));
  assert.ok(!cc.cwndOpen(8));
  assert.ok(cc.peerWindowOpen(7));
  assert.ok(!cc.peerWindowOpen(8));
});

Deno.test("congestion: slow start adds a segment per ack, capped at the peer's window", () => {
  const cc = new CongestionControl();
  cc.onPeerWindow(64);
  cc.onAcked(4);
  assert.equal(cc.cwnd, 12);
  cc.onPeerWindow(14);
  cc.onAcked(5);
  assert.equal(cc.cwnd, 14);
  cc.onPeerWindow(0); // a window of 0 still lets one segment probe it
  assert.equal(cc.peerWindow, 1);
  assert.ok(cc.peerWindowOpen(0));
});

Deno.test("congestion: loss halves the window once per window of data; then it grows by 1/cwnd", () => {
  const cc = new CongestionControl();
  cc.onPeerWindow(64);
  cc.onAcked(5); // 13
  assert.equal(cc.onLoss(0, 20), true);
  assert.equal(cc.cwnd, 6);
  // More loss before seq 20 is cumulatively acknowledged belongs to the same window.
  assert.equal(cc.onLoss(19, 25), false);
  assert.equal(cc.cwnd, 6);
  cc.onAcked(3); // above ssthresh: 3/6
  assert.equal(cc.cwnd, 6.5);
  assert.ok(cc.cwndOpen(5));
  assert.ok(!cc.cwndOpen(6));
  assert.equal(cc.onLoss(20, 30), true);
  assert.equal(cc.cwnd, 3);
  assert.equal(cc.onLoss(30, 31), true);
  assert.equal(cc.cwnd, 2, "ssthresh never falls below 2");
});

Deno.test("congestion: a timeout drops cwnd to 1, then slow start up to half the old window", () => {
  const cc = new CongestionControl();
  cc.onPeerWindow(64);
  cc.onAcked(12); // 20
  cc.onTimeout(30);
  assert.equal(cc.cwnd, 1);
  assert.ok(cc.cwndOpen(0));
  assert.ok(!cc.cwndOpen(1));
  cc.onAcked(8); // slow start up to ssthresh 10
  assert.equal(cc.cwnd, 9);
  cc.onAcked(1);
  assert.equal(cc.cwnd, 10);
  cc.onAcked(1);
  assert.equal(cc.cwnd, 10.1);
  assert.equal(cc.onLoss(29, 40), false, "the timeout started a recovery up to seq 30");
  cc.reset();
  assert.equal(cc.cwnd, INITIAL_CWND);
  assert.equal(cc.peerWindow, MIN_RECEIVE_WINDOW);
  assert.equal(cc.onLoss(0, 1), true);
});
