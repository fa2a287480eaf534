import { spawnSync } from "node:child_process";
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
 * Whether pb records carry a sort id is not in the file: read with the wrong
 * setting, a file without them would pair its records and lose every other
 * one. Each kind of file is read here with each setting, through compute's
 * own flags.
 */
const dir = mkdtempSync(join(tmpdir(), "pangea-sortid-"));
const N = 600; // even: read as if it had sort ids, the file's frames would pair up to its very end
const synthetic = new SyntheticSource({ seed: 5, evalRecords: 0 });
const samples = Array.from({ length: N }, (_, i) => synthetic.plainSample("train", i));
const listPath = join(dir, "list.json");
writeFileSync(listPath, JSON.stringify(synthetic.featureListConfig("fid_v2")));
const v1ListPath = join(dir, "list-v1.json");
writeFileSync(v1ListPath, JSON.stringify(synthetic.featureListConfig("fid_v1")));

function write(name: string, kind: "example" | "instance", sortIds: boolean): string {
  const path = join(dir, name);
  const records = samples.map(kind === "example" ? encodeExample : encodeInstance);
  const ids = records.map((_, i) => new TextEncoder().encode(`user-${i % 7}-${1_700_000_000 + i}`));
  writeFileSync(path, encodePbRecords(records, { ...PB_FILE_DEFAULTS, hasSortId: sortIds }, sortIds ? ids : undefined));
  return path;
}

async function read(path: string, format: string, extra: string[] = [], list = listPath) {
  const c = loadConfig(["--data", path, "--format", format, "--feature-list", list, "--eval-fraction", "0", ...extra], {})!;
  return openSource(c, createLogger("compute-test", "silent"));
}

describe("pb sort ids", () => {
  it.each(["example", "instance"] as const)("%s records without sort ids, read with the default (sort ids): refused with one line naming the file and the flag, nothing trained on", async (kind) => {
    const path = write(`no-sort-ids-${kind}.pb`, kind, false);
    const err = await read(path, kind, [], kind === "instance" ? v1ListPath : listPath).then(() => null, (e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
    expect((err as Error).message).toMatch(
      new RegExp(`^${path}: the first record's sort id \\(\\d+ bytes\\) is itself a whole ${kind}: the file's records carry no sort ids; read it with --sort-id false \\(reading on would lose every other record\\)$`),
    );
  });

  it("records without sort ids read with --sort-id false: every record", async () => {
    const src = await read(write("no-sort-ids-ok.pb", "example", false), "example", ["--sort-id", "false"]);
    expect(src.info.trainRecords).toBe(N);
    expect(src.info.skippedRecords).toBe(0);
  });

  it("records with sort ids read with the default: every record", async () => {
    const src = await read(write("sort-ids.pb", "example", true), "example");
    expect(src.info.trainRecords).toBe(N);
    expect(src.info.skippedRecords).toBe(0);
  });

  it.each(["fail", "skip"])("records with sort ids read with --sort-id false (--on-bad-record %s): refused as a configuration error naming the file and the flag, not skipped as damage", async (policy) => {
    for (const [name, ids] of [["keys", true], ["empty", false]] as const) {
      const path = join(dir, `sort-ids-as-none-${name}-${policy}.pb`);
      const records = samples.map(encodeExample);
      // Sort ids that are keys, and empty ones (a writer that had none to give): either way the file has the fields.
      writeFileSync(path, encodePbRecords(records, PB_FILE_DEFAULTS, ids ? records.map((_, i) => new TextEncoder().encode(`user-${i % 7}-${1_700_000_000 + i}`)) : undefined));
      const err = await read(path, "example", ["--sort-id", "false", "--on-bad-record", policy]).then(() => null, (e: unknown) => e);
      expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG"), String(err)).toBe(true);
      expect((err as Error).message).toBe(`${path}: its records carry sort ids (its first records frame as sort id, then record): read it with --sort-id true`);
    }
  });

  it("an Example file (with sort ids) read with --format examplebatch, whose default is no sort ids: named as Examples at once, not sent to --sort-id true first", async () => {
    const path = write("examples-as-batches.pb", "example", true);
    const err = await read(path, "examplebatch").then(() => null, (e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG"), String(err)).toBe(true);
    expect((err as Error).message).toBe(`${path}: its records carry sort ids and decode as Monolith example records: read it with --format example`);
    // Batches with sort ids read as Examples (--sort-id false): the batch kind, and the flag it then needs.
    const batches = join(dir, "batches-with-sort-ids.pb");
    const records = [0, 1, 2].map((b) => encodeExampleBatch(samples.slice(b * 4, b * 4 + 4)));
    writeFileSync(batches, encodePbRecords(records, PB_FILE_DEFAULTS, records.map((_, i) => new TextEncoder().encode(`batch-${i}`))));
    const asExamples = await read(batches, "example", ["--sort-id", "false"]).then(() => null, (e: unknown) => e);
    expect((asExamples as Error).message).toBe(`${batches}: its records carry sort ids and decode as Monolith examplebatch records: read it with --format examplebatch --sort-id true`);
  });

  it("a file without sort ids whose first record is damaged is damage, not taken for sort ids (its records pair up read with them)", async () => {
    const path = join(dir, "no-sort-ids-first-damaged.pb");
    const records = samples.map(encodeExample);
    const file = encodePbRecords(records, { ...PB_FILE_DEFAULTS, hasSortId: false });
    file[8] = 0x07; // the first message's first tag: wire type 7 is none, so it no longer walks as protobuf
    writeFileSync(path, file);
    const err = await read(path, "example", ["--sort-id", "false"]).then(() => null, (e: unknown) => e);
    expect((err as Error).message).toMatch(new RegExp(`^${path}: byte 0: record size \\d+: its bytes are not a protobuf message: .* \\(a damaged size or a damaged record\\); if the file's records carry sort ids, read it with --sort-id true$`));
    const src = await read(path, "example", ["--sort-id", "false", "--on-bad-record", "skip"]);
    expect(src.info.trainRecords).toBe(N - 1);
  });

  it("what `gen-data` writes in every Monolith format and pb framing reads back with the default flags", async () => {
    const genData = join(import.meta.dirname, "../dist/gen-data.js");
    for (const format of ["instance", "example", "examplebatch"] as const) {
      const out = join(dir, `gen-${format}.pb`);
      const list = join(dir, `gen-${format}.json`);
      const r = spawnSync(process.execPath, [genData, "--out", out, "--records", "1000", "--format", format, "--framing", "pb", "--feature-list-out", list], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      const src = await read(out, format, [], list);
      expect(src.info.trainRecords, format).toBe(1000);
      expect(src.info.skippedRecords, format).toBe(0);
    }
  });
});
