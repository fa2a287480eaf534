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
    ['{"slots": [{"name": "a", "slot": 40000}]}', 'slots[0] "a".slot: expected a number <= 32767, got 40000'],
    ['{"slots": [{"name": "a", "slot": 1}, {"name": "b", "slot": 1}]}', "slot 1 is declared twice"],
    ['{"slots": [{"name": "a", "slot": 2000, "type": "fid_v1"}]}', "v1 fids have 10-bit slots, 2000 is above 1023"],
    ["{not json", "is not valid JSON"],
    ['{"slots": [{"name": "a", "slot": 1}, {"name": "b", "slot": 2, "pooling": "mean", "pooling": "sum"}]}', 'gives "slots[1].pooling" twice; give each field once'],
    ["", 'is empty; expected a JSON object ({"slots": [...], ...}) or feature_list.conf lines (feature_name=... slot=...)'],
    ["[1, 2]", "holds a JSON array; expected a JSON object"],
    ['{"slots": [{"name": "label", "slot": 1}]}', "feature 'label' is the column the label 'ctr' is read from: the model would be given its own answer"],
    ['{"slots": [{"name": "a", "slot": 1}], "dense": [{"name": "watch"}], "labels": [{"name": "click"}, {"name": "watch_time", "loss": "mse", "column": "watch"}]}', "feature 'watch' is the column the label 'watch_time' is read from"],
    ["null\n", "holds JSON null; expected a JSON object"],
    ['["slots"', 'holds text starting "[\\"slots\\""; expected a JSON object'],
    ["feature_name=x\n", "expected feature_name=... slot=<integer>"],
    ["feature_name=a slot=1 dim=8 dim=16\n", ":1: dim is given twice; give each key once"],
    ["feature_name=a slot=1\nfeature_name=b name=c slot=2\n", ":2: both feature_name and name are given; give one"],
    ['{"slots": [{"name": "a", "slot": 1, "pooing": "mean"}]}', 'slots[0] "a": unknown field "pooing"'],
    ['{"slots": [{"name": "a", "slot": 1}], "groupslot": 1}', '(root): unknown field "groupslot"'],
    ['{"slots": [{"name": "a", "slot": 1}], "labels": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]}', "every label has weight 0"],
    ['{"slots": [{"name": "a", "slot": 1}], "dense": [{"name": "d", "sise": 2}]}', 'dense[0] "d": unknown field "sise"'],
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

describe("a feature list's labels", () => {
  const slots = '"slots": [{"name": "user", "slot": 1}, {"name": "item", "slot": 2}]';
  const load = (text: string) => {
    const path = join(dir, `labels-${Math.random()}.json`);
    writeFileSync(path, text);
    return { path, list: () => loadFeatureList(path) };
  };

  it("declare the tasks in order, a Monolith index and a Parquet column each (defaults: position and name), and the GAUC slot", () => {
    const list = load(`{${slots}, "labels": [{"name": "click"}, {"name": "watch_seconds", "loss": "mse", "weight": 0.5, "index": 3, "column": "watch"}], "groupSlot": 1}`).list();
    expect(list.labels).toEqual([
      { name: "click", loss: "bce", weight: 1, index: 0, column: "click" },
      { name: "watch_seconds", loss: "mse", weight: 0.5, index: 3, column: "watch" },
    ]);
    expect(list.namedTasks).toBe(true);
    expect(list.groupSlot).toBe(1);
    const single = load(`{${slots}, "label": {"index": 2, "column": "y"}}`).list();
    expect(single.labels).toEqual([{ name: "ctr", loss: "bce", weight: 1, index: 2, column: "y" }]);
    expect(single.namedTasks).toBe(false);
    expect(single.groupSlot).toBeNull();
  });

  it.each([
    [`"labels": [{"name": "click"}, {"name": "click", "column": "c2"}]`, "label 'click' is declared twice"],
    [`"label": {"index": 0}, "labels": [{"name": "click"}]`, 'labels: give either "label" (one task) or "labels" (several), not both'],
    [`"labels": [{"name": "click", "loss": "mae"}]`, 'labels[0] "click".loss: expected loss "bce" or "mse", got "mae"'],
    [`"labels": [{"name": "click"}], "groupSlot": 7`, "groupSlot 7 is not a declared slot"],
    [`"labels": []`, "labels: declare at least one label"],
    [`"labels": [{"name": "9x"}]`, 'labels[0] "9x".name: expected a name of a letter then letters, digits or _, got "9x"'],
    // An entry named by its position and name: "slots.2" had read as slot 2.
    [`"dense": [{"name": "d", "size": 0}]`, 'dense[0] "d".size: expected a number > 0, got 0'],
    [`"labels": [{"name": "probabilities"}]`, "label 'probabilities': the name is serving's own output's; choose another"],
    [`"labels": [{"name": "a", "index": 1}, {"name": "b"}]`, "labels 'a' and 'b' both read a Monolith sample's label 1"],
    [`"labels": [{"name": "a", "column": "y"}, {"name": "b", "column": "y"}]`, "labels 'a' and 'b' both read column 'y'"],
  ])("refuses %s: %s", (fields, message) => {
    const { path, list } = load(`{${slots}, ${fields}}`);
    try {
      list();
      expect.unreachable();
    } catch (err) {
      expect(FeatureErrors.is(err, "FEATURES_ERR_BAD_LIST")).toBe(true);
      expect((err as Error).message).toBe(`feature list ${path}: ${message}`);
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
