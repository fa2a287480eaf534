import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { expectSameRecords } from "./same-records.js";
import { MonolithFilesSource } from "../src/sources/monolith-files.js";
import { PbFraming, PB_FILE_DEFAULTS, encodePbRecords } from "../src/formats/pb-framing.js";
import { compileFeatureList } from "@pangea/features";
import { encodeExample, encodeInstance, v2ToV1Words } from "@pangea/monolith";

/**
 * Cross-checks against an implementation this project did not write:
 * Google's protobuf runtime for Python (Debian's python3-protobuf) with
 * classes protoc generates from our .proto files. .ci/run installs both.
 */
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const PYTHON = "/usr/bin/python3";
const available =
  spawnSync(PYTHON, ["-c", "import google.protobuf"]).status === 0 && spawnSync("protoc", ["--version"]).status === 0;
const dir = mkdtempSync(join(tmpdir(), "pangea-crosscheck-"));
const gen = join(dir, "gen");
const synthetic = new SyntheticSource({ seed: 5, evalRecords: 0 });
const N = 200;
const samples = Array.from({ length: N }, (_, i) => synthetic.plainSample("train", i));
const u64 = (w: Uint32Array, i = 0) => ((BigInt(w[2 * i + 1]!) << 32n) | BigInt(w[2 * i]!)).toString();

function python(args: string[]): string {
  return execFileSync(PYTHON, [join(ROOT, "test/support/python/monolith_crosscheck.py"), ...args], {
    env: { ...process.env, PYTHONPATH: gen },
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
}

beforeAll(() => {
  if (!available) return;
  mkdirSync(gen, { recursive: true });
  const protoDir = join(ROOT, "schemas/proto");
  execFileSync("protoc", [`-I${protoDir}`, `--python_out=${gen}`, ...["line_id", "feature", "example", "proto_parser"].map((n) => join(protoDir, `idl/matrix/proto/${n}.proto`))]);
});

describe.runIf(available)("Monolith formats against Google's protobuf (Python)", async () => {
  it("Python decodes our Example records to the same ids, floats and labels", async () => {
    const path = join(dir, "ours-example.pb");
    writeFileSync(path, encodePbRecords(samples.map(encodeExample), PB_FILE_DEFAULTS));
    const rows = python(["read", "example", path]).trim().split("\n").map((l) => JSON.parse(l) as { ids: Record<string, string[]>; floats: Record<string, number[]>; labels: number[] });
    expect(rows).toHaveLength(N);
    rows.forEach((row, i) => {
      const s = samples[i]!;
      expect(row.labels).toEqual(s.labels);
      for (const [name, ids] of s.ids) expect(row.ids[name]).toEqual([u64(ids)]);
      for (const [name, values] of s.floats) if (values.length) expect(row.floats[name]![0]).toBeCloseTo(values[0]!, 3);
    });
  });

  it("Python decodes our Instance records to the same v1 fids", async () => {
    const path = join(dir, "ours-instance.pb");
    writeFileSync(path, encodePbRecords(samples.map(encodeInstance), PB_FILE_DEFAULTS));
    const rows = python(["read", "instance", path]).trim().split("\n").map((l) => JSON.parse(l) as { fids: string[]; labels: number[] });
    rows.forEach((row, i) => {
      const expected = [...samples[i]!.ids.values()].map((w) => u64(Uint32Array.from(v2ToV1Words(w[0]!, w[1]!))));
      expect(row.fids).toEqual(expected);
      expect(row.labels).toEqual(samples[i]!.labels);
    });
  });

  it("we read Instance files Python wrote (with sort ids) to the same samples as the generator", async () => {
    const spec = samples.map((s, i) => ({
      fids: [...s.ids.values()].map((w) => u64(Uint32Array.from(v2ToV1Words(w[0]!, w[1]!)))),
      labels: s.labels,
      floats: Object.fromEntries([...s.floats].filter(([, v]) => v.length)),
      sort_id: `sort-${i}`,
    }));
    const specPath = join(dir, "spec.json");
    const out = join(dir, "python-instance.pb");
    writeFileSync(specPath, JSON.stringify(spec));
    python(["write-instances", specPath, out]);
    const src = await MonolithFilesSource.open({
      paths: [out],
      message: "instance",
      framing: new PbFraming(PB_FILE_DEFAULTS),
      compression: "none",
      featureList: compileFeatureList(synthetic.featureListConfig("fid_v1"), "test"),
      evalFraction: 0,
      onBadRecord: "fail",
    });
    expectSameRecords(src, synthetic, N);
  });
});
