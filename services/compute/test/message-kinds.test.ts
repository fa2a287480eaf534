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
    expect((err as Error).message).toMatch(new RegExp(`^${path}: record at byte 0: not a valid ${format}: .+; it decodes as a Monolith ${kind}: read the file with --format ${kind}$`));
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
