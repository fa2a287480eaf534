import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compileFeatureList, loadFeatureList } from "../src/feature-list.js";
import { CRITEO_NUM_DENSE, criteoFeatureListConfig, parseCount } from "../src/criteo.js";
import { FeatureErrors } from "../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "pangea-features-"));

describe("feature lists", () => {
  it("reads Monolith's feature_list.conf lines", () => {
    const path = join(dir, "feature_list.conf");
    writeFileSync(path, "# comment\ncolumn_name: a, b\nfeature_name=f_user_id depend=user_id method=VectorTopString slot=1\nfeature_name=f_item_id slot=200 dim=16\n");
    const list = loadFeatureList(path);
    expect(list.slotIds).toEqual([1, 200]);
    expect(list.slotByName.get("f_item_id")).toEqual({ column: 1, slot: 200, kind: "fid_v2" });
  });

  it.each([
    ['{"slots": []}', "slots: declare at least one slot"],
    ['{"slots": [{"name": "a", "slot": 40000}]}', "slots.0.slot: Too big"],
    ['{"slots": [{"name": "a", "slot": 1}, {"name": "b", "slot": 1}]}', "slot 1 is declared twice"],
    ['{"slots": [{"name": "a", "slot": 2000, "type": "fid_v1"}]}', "v1 fids have 10-bit slots, 2000 is above 1023"],
    ["{not json", "is not valid JSON"],
    ["feature_name=x\n", "expected feature_name=... slot=<integer>"],
    ['{"slots": [{"name": "a", "slot": 1, "pooing": "mean"}]}', 'slots.0: unknown field "pooing"'],
    ['{"slots": [{"name": "a", "slot": 1}], "dense": [{"name": "d", "sise": 2}]}', 'dense.0: unknown field "sise"'],
  ])("refuses %s", (text, message) => {
    const path = join(dir, `bad-${Math.random()}.json`);
    writeFileSync(path, text);
    try {
      loadFeatureList(path);
      expect.unreachable();
    } catch (err) {
      expect(FeatureErrors.is(err, "FEATURES_ERR_BAD_LIST")).toBe(true);
      expect((err as Error).message).toContain(message);
    }
  });
});

describe("Criteo's layout", () => {
  it("as a feature list: C1..C26 hashed into slots 1..26, I1..I13 as log(1 + count)", () => {
    const list = compileFeatureList(criteoFeatureListConfig(), "criteo");
    expect(list.slotIds).toEqual(Array.from({ length: 26 }, (_, k) => k + 1));
    expect(list.slotByName.get("C1")).toEqual({ column: 0, slot: 1, kind: "bytes" });
    expect(list.slotByName.get("C26")).toEqual({ column: 25, slot: 26, kind: "bytes" });
    expect(list.numDense).toBe(CRITEO_NUM_DENSE);
    expect(list.denseByName.get("I13")).toEqual({ offset: 12, size: 1, log1p: true });
  });

  it.each([
    ["", 0],
    ["7", 7],
    ["-3", -3],
    ["1234567", 1234567],
    ["-", Number.NaN],
    ["1.5", Number.NaN],
    ["x", Number.NaN],
  ])("count %j reads as %d", (text, value) => {
    const b = Buffer.from(text);
    expect(parseCount(b, 0, b.length)).toBe(value);
  });
});
