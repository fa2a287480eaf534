import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { gunzipSync, gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativeBlas } from "@pangea/blas";
import { describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { loadCheckpoint } from "../../services/orchestrator/src/checkpoint/checkpoint.js";
import { ENTRY, runNode } from "../support/processes.js";

const tmp = mkdtempSync(join(tmpdir(), "pangea-e2e-"));

function parseStatus(stdout: string): JobStatus__Output {
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as JobStatus__Output;
}

describe("pangea run: a whole cluster of real processes", () => {
  it("trains DLRM on synthetic data with 2 trainers: loss falls, AUC beats the bar, checkpoint is valid", async () => {
    const steps = 150;
    const batch = 256;
    const r = await runNode(
      ENTRY.cli,
      ["run", "--json", "--trainers", "2", "--steps", String(steps), "--batch-size", String(batch), "--eval-records", "10000",
        "--log-dir", join(tmp, "logs"), "--checkpoint-dir", join(tmp, "ckpt")],
      { timeoutMs: 240_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const s = parseStatus(r.stdout);
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(Number(s.step)).toBe(steps);
    expect(Number(s.samples)).toBe(steps * 2 * batch);
    expect(s.workers.filter((w) => w.kind === "WORKER_KIND_TRAINER")).toHaveLength(2);
    expect(["wasm", "wasm+blas", "tensorflow", "cpu"]).toContain(s.backend);
    // Where the native BLAS addon is built (CI builds it), trainers must be running on it.
    if (nativeBlas().blas) expect(s.backend).toBe("wasm+blas");
    expect(s.samplesPerSecond).toBeGreaterThan(0);
    // The rate after the first 10 steps: the samples since then over less time than the whole job took.
    expect(Number(s.warmupSteps)).toBe(10);
    const afterWarmup = (steps - 10) * 2 * batch;
    expect(afterWarmup / s.samplesPerSecondAfterWarmup).toBeLessThan(s.elapsedSeconds);
    expect(afterWarmup / s.samplesPerSecondAfterWarmup).toBeGreaterThan(0.2 * s.elapsedSeconds);
    expect(r.stderr).toContain(`throughput        ${Math.round(s.samplesPerSecond).toLocaleString("en-US")} samples/s (${Math.round(s.samplesPerSecondAfterWarmup).toLocaleString("en-US")} after its first 10 steps)`);
    // The loss must fall clearly from its start (about 0.69 for untrained weights).
    expect(s.firstLoss).toBeGreaterThan(0.6);
    expect(s.smoothedLoss).toBeLessThan(s.firstLoss - 0.1);
    // Held-out quality: well above chance, and within reach of the generator's own model.
    expect(Number(s.eval!.records)).toBe(10_000);
    expect(s.source!.hasGroundTruth).toBe(true);
    expect(s.eval!.auc).toBeGreaterThan(0.74);
    expect(s.eval!.auc).toBeLessThan(s.source!.groundTruthAuc);
    expect(s.eval!.logloss).toBeLessThan(0.55);
    // The human summary goes to stderr with --json; it names the comparison.
    expect(r.stderr).toMatch(/held-out AUC\s+0\.\d{4}\s+\(ground-truth model 0\.\d{4}, gap 0\.\d{4}\)/);
    const ck = loadCheckpoint(s.checkpointPath);
    expect(ck.manifest.step).toBe(steps);
    expect(ck.manifest.embeddingRows).toBe(Number(s.embeddingRows));
    expect(ck.manifest.model.numSlots).toBe(26);
  });

  it("honours a per-slot config: a slot with an occurrence threshold filters rare ids, another slot uses FTRL", async () => {
    const slots = join(tmp, "slots.json");
    writeFileSync(slots, JSON.stringify({ slots: { "3": { occurrenceThreshold: 4 }, "5": { optimizer: "ftrl", hyper: { learningRate: 0.05 } } } }));
    const r = await runNode(
      ENTRY.cli,
      ["run", "--json", "--trainers", "1", "--steps", "20", "--batch-size", "256", "--eval-records", "2000", "--slot-config", slots,
        "--log-dir", join(tmp, "logs-slots"), "--checkpoint-dir", join(tmp, "ckpt")],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const s = parseStatus(r.stdout);
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(Number(s.embeddings!.filteredLookups)).toBeGreaterThan(0);
    expect(Number(s.embeddings!.admittedIds)).toBeGreaterThan(0);
    const ck = loadCheckpoint(s.checkpointPath);
    expect(ck.manifest.tables.find((t) => t.slot === 5)!.optimizer).toBe("ftrl");
    expect(ck.manifest.tables.find((t) => t.slot === 3)!.optimizer).toBe("adagrad");
    expect(r.stderr).toMatch(/embedding rows\s+[\d,]+\s+\([\d.]+ MB; [\d,]+ lookups filtered, [\d,]+ ids admitted, 0 rows evicted, 0 gradients rejected\)/);
  });

  it("fp16 gradient compression trains to the same AUC within 0.01", async () => {
    const job = (compression: string) =>
      runNode(ENTRY.cli, ["run", "--json", "--trainers", "2", "--steps", "60", "--batch-size", "256", "--eval-records", "5000",
        "--gradient-compression", compression, "--log-dir", join(tmp, `logs-${compression}`), "--checkpoint-dir", join(tmp, "ckpt")], { timeoutMs: 120_000 });
    const [plain, half] = await Promise.all([job("none"), job("fp16")]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(half.code, half.stderr).toBe(0);
    const a = parseStatus(plain.stdout);
    const b = parseStatus(half.stdout);
    expect(b.state).toBe("JOB_STATE_COMPLETED");
    expect(Math.abs(a.eval!.auc - b.eval!.auc)).toBeLessThan(0.01);
    expect(b.eval!.auc).toBeGreaterThan(0.7);
  });

  it("trains from a Criteo TSV file written by gen-data", async () => {
    const data = join(tmp, "criteo.tsv");
    const gen = await runNode(ENTRY.genData, ["--out", data, "--records", "20000", "--seed", "5"]);
    expect(gen.code, gen.stderr).toBe(0);
    expect(gen.stdout).toContain(`wrote 20000 records to ${data}`);
    const r = await runNode(
      ENTRY.cli,
      ["run", "--json", "--trainers", "1", "--steps", "30", "--batch-size", "256", "--data", data, "--eval-fraction", "0.1",
        "--log-dir", join(tmp, "logs-tsv"), "--checkpoint-dir", join(tmp, "ckpt")],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const s = parseStatus(r.stdout);
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(s.source!.description).toContain("criteo.tsv (20000 records)");
    expect(Number(s.source!.trainRecords)).toBe(18_000);
    expect(Number(s.eval!.records)).toBe(2_000);
    expect(s.source!.hasGroundTruth).toBe(false);
    expect(s.eval!.auc).toBeGreaterThan(0.6);
  });

  it("trains from Monolith Instance records (TFRecord, gzip) and reports skipped bad records", async () => {
    const data = join(tmp, "instances.tfrecord.gz");
    const list = join(tmp, "instances.json");
    const gen = await runNode(ENTRY.genData, ["--out", data, "--records", "12000", "--format", "instance", "--framing", "tfrecord", "--compression", "gzip", "--feature-list-out", list]);
    expect(gen.code, gen.stderr).toBe(0);
    // Flip one payload byte inside the (decompressed) stream: its data CRC no longer matches.
    const raw = gunzipSync(readFileSync(data));
    raw[5000] ^= 0xff;
    writeFileSync(data, gzipSync(raw));
    const common = ["run", "--json", "--trainers", "1", "--steps", "20", "--batch-size", "256", "--data", data, "--format", "instance",
      "--framing", "tfrecord", "--feature-list", list, "--log-dir", join(tmp, "logs-monolith"), "--checkpoint-dir", join(tmp, "ckpt")];
    const strict = await runNode(ENTRY.cli, common, { timeoutMs: 60_000 });
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(new RegExp(`compute exited with code 1 while starting: pangea-compute: error COMPUTE_ERR_BAD_FRAME: ${data}: decompressed byte \\d+: TFRecord data checksum mismatch`));
    const r = await runNode(ENTRY.cli, [...common, "--on-bad-record", "skip"], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const s = parseStatus(r.stdout);
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(Number(s.source!.skippedRecords)).toBe(1);
    expect(Number(s.source!.trainRecords) + Number(s.source!.evalRecords)).toBe(11_999);
    expect(r.stderr).toMatch(/skipped data\s+1 bad record skipped, \d+ samples kept: 1 x TFRecord data checksum mismatch/);
    expect(s.eval!.auc).toBeGreaterThan(0.6);
  });
});
