import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { encodeExample, encodeExampleBatch, encodeInstance } from "@pangea/monolith";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { PB_FILE_DEFAULTS, encodePbRecords } from "../src/formats/pb-framing.js";
import { loadConfig } from "../src/config.js";
import { openSource } from "../src/sources/open-source.js";
import { ComputeErrors } from "../src/errors.js";

/**
 * A Monolith file read with another --format than its records' message kind
 * fails on its first record, and every record after it would too: refused
 * as the flag to change, naming the kind the record does decode as, whatever
 * --on-bad-record says (skipping would skip the whole file).
 */
const dir = mkdtempSync(join(tmpdir(), "pangea-kinds-"));
const synthetic = new SyntheticSource({ seed: 9, evalRecords: 0 });
const samples = Array.from({ length: 64 }, (_, i) => synthetic.plainSample("train", i));
const listPath = join(dir, "list.json");
writeFileSync(listPath, JSON.stringify(synthetic.featureListConfig("fid_v2")));
const sortIds = (n: number) => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`user-${i}`));

/** The file Monolith writes for a kind: Instances and Examples with sort ids, ExampleBatches (of 16) without. */
function write(kind: "instance" | "example" | "examplebatch"): string {
  const path = join(dir, `${kind}.pb`);
  if (kind === "examplebatch") {
    const batches = Array.from({ length: samples.length / 16 }, (_, b) => encodeExampleBatch(samples.slice(b * 16, b * 16 + 16)));
    writeFileSync(path, encodePbRecords(batches, { ...PB_FILE_DEFAULTS, hasSortId: false }));
  } else {
    const records = samples.map(kind === "example" ? encodeExample : encodeInstance);
    writeFileSync(path, encodePbRecords(records, PB_FILE_DEFAULTS, sortIds(records.length)));
  }
  return path;
}

async function read(path: string, format: string, extra: string[] = []) {
  const c = loadConfig(["--data", path, "--format", format, "--feature-list", listPath, "--eval-fraction", "0", ...extra], {})!;
  return openSource(c, createLogger("compute-test", "silent"));
}

describe("a Monolith file read as another message kind", () => {
  it.each([
    ["example", "instance", []],
    ["instance", "example", []],
    ["example", "instance", ["--on-bad-record", "skip"]],
    // An ExampleBatch file has no sort ids: read as Examples it is told to drop them first, then the kind.
    ["examplebatch", "example", ["--sort-id", "false"]],
  ] as const)("a file of %ss read with --format %s %j: refused naming the kind its first record decodes as", async (kind, format, extra) => {
    const path = write(kind);
    const err = await read(path, format, [...extra]).then(() => null, (e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG"), String(err)).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^${path}: record at byte 0: not a valid ${format}: .+; its records decode as Monolith ${kind} records: read the file with --format ${kind}$`));
  });

  it("an ExampleBatch file whose first batch holds one example (an Example too) is named as examplebatch", async () => {
    const path = join(dir, "batch-of-one.pb");
    const batches = [encodeExampleBatch(samples.slice(0, 1)), encodeExampleBatch(samples.slice(1, 17)), encodeExampleBatch(samples.slice(17, 33))];
    writeFileSync(path, encodePbRecords(batches, { ...PB_FILE_DEFAULTS, hasSortId: false }));
    const err = await read(path, "instance", ["--sort-id", "false"]).then(() => null, (e: unknown) => e);
    expect((err as Error).message).toMatch(/; its records decode as Monolith examplebatch records: read the file with --format examplebatch$/);
    // Read as Examples, the batches of 16 are refused naming the batch kind, wherever they are.
    const asExamples = await read(path, "example", ["--sort-id", "false"]).then(() => null, (e: unknown) => e);
    expect((asExamples as Error).message).toMatch(/record at byte \d+: not a valid example: named feature '\S+' holds 16 features where an Example's holds one; an ExampleBatch's feature list holds one per example \(--format examplebatch\)/);
    expect((await read(path, "examplebatch")).info.trainRecords).toBe(33);
  });

  it("one file of another kind among several: refused, saying --format is every file's", async () => {
    const examples = write("example");
    const instances = write("instance");
    const c = loadConfig(["--data", `${examples},${instances}`, "--format", "example", "--feature-list", listPath, "--eval-fraction", "0"], {})!;
    const err = await openSource(c, createLogger("compute-test", "silent")).then(() => null, (e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG"), String(err)).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^${instances}: record at byte 0: not a valid example: .+; its records decode as Monolith instance records: --format is every --data file's: give files of one kind \\(--format instance if all are\\)$`));
  });

  it("a bad first record among good ones stays a bad record, skipped under --on-bad-record skip, though it walks as another kind's fields", async () => {
    // An Example without a label (its one named feature's bytes a multiple of 8, as an Instance's packed fids are).
    const unlabelled = join(dir, "unlabelled-first.pb");
    const records = samples.map(encodeExample);
    records[0] = encodeExample({ ...samples[0]!, labels: [] });
    writeFileSync(unlabelled, encodePbRecords(records, PB_FILE_DEFAULTS, sortIds(records.length)));
    const failed = await read(unlabelled, "example").then(() => null, (e: unknown) => e);
    expect((failed as Error).message).not.toContain("decode as");
    expect((await read(unlabelled, "example", ["--on-bad-record", "skip"])).info.trainRecords).toBe(samples.length - 1);
    // A first batch whose batch_size says 2 where its lists hold one example each (which reads as one Example).
    const damaged = join(dir, "damaged-first-batch.pb");
    const first = encodeExampleBatch(samples.slice(0, 1));
    expect(first.at(-1)).toBe(1); // batch_size 1, its last byte
    const bad = Uint8Array.from(first);
    bad[bad.length - 1] = 2;
    const batches = [bad, ...Array.from({ length: 3 }, (_, b) => encodeExampleBatch(samples.slice(1 + b * 16, 17 + b * 16)))];
    writeFileSync(damaged, encodePbRecords(batches, { ...PB_FILE_DEFAULTS, hasSortId: false }));
    const refused = await read(damaged, "examplebatch").then(() => null, (e: unknown) => e);
    expect((refused as Error).message).toMatch(/not a valid examplebatch: feature list '\S+' holds 1 features, expected 2/);
    expect((refused as Error).message).not.toContain("decode as");
    expect((await read(damaged, "examplebatch", ["--on-bad-record", "skip"])).info.trainRecords).toBe(48);
  });

  it.each(["instance", "example", "examplebatch"] as const)("a file of %ss read with its own --format: every sample", async (kind) => {
    const src = await read(write(kind), kind);
    expect(src.info.trainRecords).toBe(samples.length);
    expect(src.info.skippedRecords).toBe(0);
  });

  it("a damaged first record that decodes as no kind keeps the framing hint, and is skipped under --on-bad-record skip", async () => {
    const path = join(dir, "damaged-first.pb");
    const records = samples.map(encodeExample);
    const file = encodePbRecords(records, PB_FILE_DEFAULTS, sortIds(records.length));
    // The first message's first byte (after its sort id's size, the sort id "user-0" and the record's size): wire type 7 is none.
    file[8 + 6 + 8] = 0x07;
    writeFileSync(path, file);
    const err = await read(path, "example").then(() => null, (e: unknown) => e);
    expect((err as Error).message).toMatch(/^\S+damaged-first\.pb: byte 0: .*; check the framing options/);
    expect((err as Error).message).not.toContain("decodes as");
    const src = await read(path, "example", ["--on-bad-record", "skip"]);
    expect(src.info.trainRecords).toBe(samples.length - 1);
  });
});
