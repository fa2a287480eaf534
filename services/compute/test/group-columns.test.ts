import { describe, expect, it } from "vitest";
import { GroupColumns } from "../src/sources/group-columns.js";

describe("GroupColumns", () => {
  it("reads each column's value at a row from the piece holding it, pieces given in any order", () => {
    const g = new GroupColumns();
    // Rows 100..105 of a row group: column a in one piece, b in three (pages), added out of order.
    g.add("a", 100, 106, [0, 1, 2, 3, 4, 5]);
    g.add("b", 104, 106, ["e", "f"]);
    g.add("b", 100, 102, ["a", "b"]);
    g.add("b", 102, 104, ["c", "d"]);
    g.seal();
    const rows = [100, 101, 102, 103, 104, 105].map((r) => [g.value("a", r), g.value("b", r), g.value("c", r)]);
    expect(rows).toEqual([[0, "a", undefined], [1, "b", undefined], [2, "c", undefined], [3, "d", undefined], [4, "e", undefined], [5, "f", undefined]]);
    expect([g.has("a"), g.has("b"), g.has("c")]).toEqual([true, true, false]);
  });
});
