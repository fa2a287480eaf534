import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { SyntheticSource } from "../../services/compute/src/sources/synthetic.js";
import { ENTRY, closedPort, waitFor } from "../support/processes.js";

/**
 * A Criteo TSV several times compute's --max-memory-mb: compute streams it
 * once into its record cache and serves every record from there, so its
 * resident memory beyond a baseline compute's stays under the budget, and
 * the job trains every record exactly once, across a kill -9 of compute
 * (the restarted compute reuses the cache instead of reading the file again).
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-streamed-"));
const BUDGET_MB = 64;
const TRAINERS = 2;
const BATCH = 4096;
const STEPS = 16;
/** One epoch exactly: every batch full. */
const RECORDS = TRAINERS * BATCH * STEPS;
const live: LocalCluster[] = [];

afterAll(async () => {
  await Promise.all(live.map((c) => c.stop(1_000)));
  // The data file and its cache are a few hundred MB.
  rmSync(tmp, { recursive: true, force: true });
});

/**
 * `records` lines: a block of distinct synthetic lines written over and over
 * (quick to write; the content does not matter here), their tokens padded to
 * 50 more characters so the file is several times the budget while the job
 * trains few enough records to stay quick.
 */
function writeTsv(path: string, records: number): void {
  const src = new SyntheticSource({ seed: 7, evalRecords: 0 });
  const distinct = 8192;
  const pad = (line: string) => line.split("\t").map((f, i) => (i > 13 ? `${f}-padded-with-fifty-more-characters-to-make-it-larger` : f)).join("\t");
  const block = Buffer.from(Array.from({ length: distinct }, (_, i) => `${pad(src.tsvLine("train", i))}\n`).join(""));
  const fd = openSync(path, "w");
  for (let n = 0; n < records; n += distinct) {
    const lines = Math.min(distinct, records - n);
    let end = block.length;
    if (lines < distinct) {
      end = 0;
      for (let l = 0; l < lines; l++) end = block.indexOf(10, end) + 1;
    }
    writeSync(fd, block, 0, end);
  }
  closeSync(fd);
}

function memoryKb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)![1]);
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** Compute's own peak with a 100-record file, once its source is ready: Node, gRPC and the code, what the budget does not cover. */
async function baselineKb(): Promise<number> {
  const small = join(tmp, "small.tsv");
  writeTsv(small, 100);
  const child = spawn(process.execPath, [ENTRY.compute, "--data", small, "--port", "0", "--metrics-port", "0", "--orchestrator", `127.0.0.1:${await closedPort()}`, "--connect-timeout-ms", "20000"], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  try {
    await waitFor("the small source to be ready", async () => err.includes("data source ready"), 20_000, 50);
    return memoryKb(child.pid!).hwm;
  } finally {
    child.kill("SIGKILL");
  }
}

describe("a data file larger than compute's memory budget", () => {
  it(`compute stays within --max-memory-mb ${BUDGET_MB} beyond its baseline; every record trains once, across a kill -9 of compute`, async () => {
    const data = join(tmp, "big.tsv");
    writeTsv(data, RECORDS);
    const fileMb = statSync(data).size / 2 ** 20;
    expect(fileMb).toBeGreaterThan(3 * BUDGET_MB);
    const baseline = await baselineKb();
    const cacheDir = join(tmp, "cache");
    const c = await LocalCluster.start({
      trainers: TRAINERS,
      logDir: join(tmp, "logs"),
      orchestratorArgs: ["--job-id", "streamed", "--steps", String(STEPS), "--batch-size", String(BATCH), "--checkpoint-dir", join(tmp, "ckpt"), "--embedding-dim", "4", "--bottom-mlp", "8,4", "--top-mlp", "8"],
      computeArgs: ["--data", data, "--eval-fraction", "0", "--max-memory-mb", String(BUDGET_MB), "--cache-dir", cacheDir, "--rejoin-timeout-ms", "30000"],
      trainerArgs: ["--rejoin-timeout-ms", "30000"],
    });
    live.push(c);
    const status = new StatusClient(c.orchestratorAddress);
    await status.connect(5_000);
    const peaks: number[] = [];
    try {
      await waitFor("step 6", async () => Number((await status.get().catch(() => ({ step: 0 }))).step) >= 6, 60_000, 50);
      const first = c.process("compute")!;
      peaks.push(memoryKb(first.child.pid!).hwm);
      first.child.kill("SIGKILL");
      await first.exited;
      await c.restart("compute");
      const s = await waitFor<JobStatus__Output>(
        "the job to end",
        async () => {
          const st = await status.get().catch(() => null);
          return st && (st.state === "JOB_STATE_COMPLETED" || st.state === "JOB_STATE_FAILED") ? st : null;
        },
        90_000,
      );
      peaks.push(memoryKb(c.process("compute")!.child.pid!).hwm);
      expect(s.error).toBe("");
      expect(s.state).toBe("JOB_STATE_COMPLETED");
      // The job's accounting: every global batch applied once, so every record of the epoch trained once.
      expect(Number(s.batchesApplied)).toBe(TRAINERS * STEPS);
      expect(Number(s.missingBatches)).toBe(0);
      expect(Number(s.samples)).toBe(RECORDS);
    } finally {
      status.close();
      await c.stop(1_000);
    }
    // The restarted compute read the cache the first one wrote (the file was read once).
    const logs = readdirSync(join(tmp, "logs")).filter((f) => f.startsWith("compute"));
    const restartedLog = readFileSync(join(tmp, "logs", logs.find((f) => f !== "compute.log")!), "utf8");
    expect(restartedLog).toContain("record cache reused: ");
    console.log(`compute's peak resident memory beyond a baseline of ${(baseline / 1024).toFixed(0)} MB, on a ${fileMb.toFixed(0)} MB file with --max-memory-mb ${BUDGET_MB}: ${peaks.map((p) => ((p - baseline) / 1024).toFixed(0)).join(" MB (reading the file), ")} MB (restarted, reusing the cache)`);
    for (const peak of peaks) expect((peak - baseline) / 1024, `peak ${peak} kB against a baseline of ${baseline} kB, on a ${fileMb.toFixed(0)} MB file`).toBeLessThan(BUDGET_MB);
  }, 150_000);
});
