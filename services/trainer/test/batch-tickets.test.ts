import { describe, expect, it } from "vitest";
import { BatchTickets } from "../src/cluster/batch-tickets.js";

describe("BatchTickets", () => {
  it("gives each batch the ticket noted with it, forgets it once pushed, and keeps at most its bound", () => {
    const t = new BatchTickets(3);
    t.note([4, 5], ["a", "b"]);
    expect([t.of(4), t.of(5), t.of(6)]).toEqual(["a", "b", ""]);
    // Given again (a dead trainer's batch, or after registering again): the newest ticket.
    t.note([4], ["c"]);
    expect(t.of(4)).toBe("c");
    t.done(4);
    expect(t.of(4)).toBe("");
    // An orchestrator that gives no tickets: nothing noted, pushes carry none.
    t.note([9], []);
    expect(t.size).toBe(1);
    // Past its bound the oldest go (pushes that failed for good leave theirs).
    t.note([10, 11, 12], ["x", "y", "z"]);
    expect([t.size, t.of(5), t.of(10), t.of(12)]).toEqual([3, "", "x", "z"]);
  });
});
