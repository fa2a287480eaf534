import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { compileFeatureList } from "@pangea/features";
import { encodeExample } from "@pangea/monolith";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { PB_FILE_DEFAULTS, encodePbRecords } from "../src/formats/pb-framing.js";
import { loadConfig } from "../src/config.js";
import { openSource } from "../src/sources/open-source.js";
import { shortDenseWarning } from "../src/sources/slot-coverage.js";

/**
 * A dense feature the feature list declares larger than the records give it (a vector of 3 declared as 5) trained its
 * last inputs on zeros without a word: the job's warnings now say which values are never given.
 */
const dir = mkdtempSync(join(tmpdir(), "pangea-short-dense-"));
const synthetic = new SyntheticSource({ seed: 4, evalRecords: 0 });
const config = synthetic.featureListConfig("fid_v2");

describe("a dense feature declared larger than the records give it", () => {
  it("names the values past those given, only for features given some values", () => {
    const list = compileFeatureList({ ...config, dense: [{ name: "vec", size: 5 }, { name: "one", size: 1 }, { name: "pair", size: 2 }] }, "test");
    // vec gives 3 of 5, one nothing (the empty-feature warning's), pair all of its 2.
    expect(shortDenseWarning([9, 9, 4, 0, 0, 0, 7, 1], list, 9)).toBe(
      "dense feature 'vec' (values 4 to 5 of 5) of the feature list is 0 or missing there in every one of the 9 records read: if the records give fewer values, the feature list's size is larger than theirs",
    );
    expect(shortDenseWarning([9, 9, 4, 1, 0, 0, 7, 0], list, 9)).toBe(
      "dense features 'vec' (value 5 of 5), 'pair' (value 2 of 2) of the feature list are 0 or missing there in every one of the 9 records read: if the records give fewer values, the feature list's size is larger than theirs",
    );
    expect(shortDenseWarning([9, 9, 4, 1, 1, 0, 7, 1], list, 9)).toBeNull();
    expect(shortDenseWarning(undefined, list, 9)).toBeNull();
  });

  it("a Monolith file's job warns when its feature list declares I1 with 3 values and the records give 1", async () => {
    const samples = Array.from({ length: 200 }, (_, i) => synthetic.plainSample("train", i));
    const path = join(dir, "examples.pb");
    const records = samples.map(encodeExample);
    writeFileSync(path, encodePbRecords(records, PB_FILE_DEFAULTS, records.map((_, i) => new TextEncoder().encode(`k${i}`))));
    const listPath = join(dir, "list.json");
    writeFileSync(listPath, JSON.stringify({ ...config, dense: config.dense.map((d) => (d.name === "I1" ? { ...d, size: 3 } : d)) }));
    const c = loadConfig(["--data", path, "--format", "example", "--feature-list", listPath, "--eval-fraction", "0", "--cache-dir", join(dir, "cache")], {})!;
    const src = await openSource(c, createLogger("compute-test", "silent"));
    expect(src.info.dataWarnings ?? []).toContain(
      "dense feature 'I1' (values 2 to 3 of 3) of the feature list is 0 or missing there in every one of the 200 records read: if the records give fewer values, the feature list's size is larger than theirs",
    );
  });
});
