import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { CounterFrom } from "../src/counter-from.js";

describe("CounterFrom", () => {
  it("exports a label set at 0 from its first reading (a series that appeared only with its first event hid the zero from rate() and absence alerts), then follows the total, never down", async () => {
    const registry = new Registry();
    const c = new CounterFrom(registry, "things_total", "Things.", ["slot"]);
    const value = async (slot: string) => (await registry.getSingleMetricAsString("things_total")).split("\n").find((l) => l.startsWith(`things_total{slot="${slot}"}`))?.split(" ")[1];
    c.update(0, { slot: "1" });
    expect(await value("1")).toBe("0");
    expect(await value("2")).toBeUndefined();
    c.update(3, { slot: "1" });
    c.update(2, { slot: "1" });
    c.update(5, { slot: "2" });
    expect([await value("1"), await value("2")]).toEqual(["3", "5"]);
  });
});
