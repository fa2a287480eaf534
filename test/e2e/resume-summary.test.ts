import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { formatSummary } from "../../packages/cli/src/commands/summary.js";
import { latestCheckpoint } from "../../services/orchestrator/src/checkpoint/checkpoint.js";
import { readCounters } from "../../services/orchestrator/src/job/job-counters.js";
import { closedPort, waitFor } from "../support/processes.js";

/**
 * The job summary after an orchestrator killed with SIGKILL and restarted
 * with --resume: its steps are the job's own and its counters include what
 * happened before the crash (as of the checkpoint resumed from), instead of
 * starting again at step 1 with no lost trainer.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-resume-summary-"));
const CKPT = join(tmp, "ckpt");
const STEPS = 150;
const BATCH = 64;
const live: LocalCluster[] = [];

afterAll(async () => {
  await Promise.all(live.map((c) => c.stop(1_000)));
});

async function stepReached(status: StatusClient, step: number): Promise<JobStatus__Output> {
  return waitFor(`step ${step}`, async () => {
    const s = await status.get().catch(() => null);
    return s && Number(s.step) >= step ? s : null;
  }, 60_000, 50);
}

describe("the job summary across an orchestrator restart", () => {
  it("after kill -9 and --resume: the first loss is step 1's, and lost trainers, reassigned batches, samples, train time and admitted ids include the part before the crash", async () => {
    // A threshold of 2 makes the store count admitted ids: with nothing evicted, every row was admitted once.
    const slotConfig = join(tmp, "slots.json");
    writeFileSync(slotConfig, JSON.stringify({ default: { occurrenceThreshold: 2 } }));
    const c = await LocalCluster.start({
      trainers: 2,
      orchestratorPort: await closedPort(),
      logDir: join(tmp, "logs"),
      orchestratorArgs: [
        "--job-id", "resume-summary", "--steps", String(STEPS), "--batch-size", String(BATCH), "--checkpoint-dir", CKPT,
        "--checkpoint-every-steps", "10", "--heartbeat-timeout-ms", "3000", "--slot-config", slotConfig,
      ],
      computeArgs: ["--eval-records", "2000", "--rejoin-timeout-ms", "30000"],
      trainerArgs: ["--rejoin-timeout-ms", "30000"],
    });
    live.push(c);
    const status = new StatusClient(c.orchestratorAddress);
    try {
      await status.connect(5_000);
      const early = await stepReached(status, 5);
      expect(Number(early.firstLossStep)).toBe(1);
      c.process("trainer-1")!.child.kill("SIGKILL");
      await waitFor("trainer-1 declared dead", async () => (await status.get()).workers.some((w) => w.workerId === "trainer-1" && !w.alive), 8_000, 50);
      await c.addTrainer("trainer-2");
      // Past the next checkpoint after the loss, so the checkpoint resumed from records it.
      const lostAt = Number((await status.get()).step);
      await stepReached(status, lostAt + 12);

      c.process("orchestrator")!.child.kill("SIGKILL");
      await c.process("orchestrator")!.exited;
      const { from } = latestCheckpoint(CKPT, "resume-summary");
      const saved = from![0]!.manifest;
      const savedCounters = readCounters(saved.training!.counters ?? undefined);
      expect(savedCounters.deadTrainers).toBe(1);
      expect(savedCounters.firstLossStep).toBe(1);
      expect(savedCounters.firstLoss).toBe(early.firstLoss);
      expect(savedCounters.trainSeconds).toBeGreaterThan(0);
      expect(saved.storeCounters!.admitted).toBe(saved.embeddingRows);
      expect(saved.storeCounters!.filtered).toBeGreaterThan(0);

      await c.restart("orchestrator", ["--resume"]);
      const s = await waitFor("the job to end", async () => {
        const st = await status.get().catch(() => null);
        return st && (st.state === "JOB_STATE_COMPLETED" || st.state === "JOB_STATE_FAILED") ? st : null;
      }, 120_000);
      expect(s.error).toBe("");
      expect(s.state).toBe("JOB_STATE_COMPLETED");
      expect(Number(s.resumedFromStep)).toBe(saved.step);

      // Steps and samples are the job's: the first loss is still step 1's, every batch counted once.
      expect(Number(s.step)).toBe(STEPS);
      expect(s.firstLoss).toBe(early.firstLoss);
      expect(Number(s.firstLossStep)).toBe(1);
      expect(Number(s.samples)).toBe(STEPS * 2 * BATCH);
      expect(Number(s.batchesApplied)).toBe(STEPS * 2);
      expect(Number(s.missingBatches)).toBe(0);
      // Counters carry on from the checkpoint's.
      expect(Number(s.deadTrainers)).toBe(1);
      expect(Number(s.reassignedBatches)).toBeGreaterThanOrEqual(savedCounters.reassignedBatches);
      expect(s.elapsedSeconds).toBeGreaterThan(savedCounters.trainSeconds);
      expect(Number(s.embeddings!.admittedIds)).toBe(Number(s.embeddingRows));
      expect(Number(s.embeddings!.filteredLookups)).toBeGreaterThanOrEqual(saved.storeCounters!.filtered);

      const summary = formatSummary(s, 2);
      expect(summary).toContain(`resumed from step ${saved.step}`);
      expect(summary).toMatch(new RegExp(`\\n  steps +${STEPS} of ${STEPS} \\(${(STEPS * 2 * BATCH).toLocaleString("en-US")} samples\\)`));
      expect(summary).toMatch(/reassigned from 1 lost trainer\b/);
      expect(summary).toMatch(new RegExp(`\\n  train loss +${s.firstLoss.toFixed(4)} at step 1 -> `));
      expect(summary).toMatch(/throughput +[\d,]+ samples\/s since the resume/);
    } finally {
      status.close();
      await c.stop(1_000);
    }
  }, 180_000);
});
