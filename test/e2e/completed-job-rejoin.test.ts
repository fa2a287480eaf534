import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { ENTRY, closedPort, runNode, waitFor } from "../support/processes.js";

/**
 * What make docker-up does to a job that completed: the orchestrator is
 * recreated with more --steps (and --resume), the compute container is not.
 * The compute whose job had finished registers with the new orchestrator
 * and the job trains on; a compute with other data is refused, naming both.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-completed-rejoin-"));
let cluster: LocalCluster | null = null;

afterAll(async () => {
  await cluster?.stop(1_000);
  rmSync(tmp, { recursive: true, force: true });
});

async function ended(status: StatusClient): Promise<JobStatus__Output> {
  return waitFor("the job to end", async () => {
    const s = await status.get().catch(() => null);
    return s && (s.state === "JOB_STATE_COMPLETED" || s.state === "JOB_STATE_FAILED") ? s : null;
  }, 120_000);
}

describe("a completed job's orchestrator restarted", () => {
  it("with more steps gets the same compute back and trains on; a compute on other data is refused", async () => {
    const [a, b] = [join(tmp, "a.tsv"), join(tmp, "b.tsv")];
    expect((await runNode(ENTRY.cli, ["gen-data", "--out", a, "--records", "3000"])).code).toBe(0);
    expect((await runNode(ENTRY.cli, ["gen-data", "--out", b, "--records", "2000"])).code).toBe(0);
    cluster = await LocalCluster.start({
      trainers: 1,
      orchestratorPort: await closedPort(),
      logDir: join(tmp, "logs"),
      orchestratorArgs: ["--job-id", "j", "--steps", "6", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt"), "--eval-every-steps", "4"],
      computeArgs: ["--data", a, "--eval-fraction", "0.1", "--rejoin-timeout-ms", "30000"],
      trainerArgs: ["--rejoin-timeout-ms", "30000"],
    });
    const c = cluster;
    const status = new StatusClient(c.orchestratorAddress);
    try {
      await status.connect(5_000);
      const first = await ended(status);
      expect(first.state).toBe("JOB_STATE_COMPLETED");
      expect(first.evaluations.map((e) => Number(e.step))).toEqual([4, 6]);
      const computePid = c.process("compute")!.child.pid;

      c.process("orchestrator")!.child.kill("SIGTERM");
      await c.process("orchestrator")!.exited;
      await c.process("trainer-0")!.exited;
      await c.restart("orchestrator", ["--resume", "--steps", "12"]);
      await c.restart("trainer-0");
      const more = await ended(status);
      expect([more.state, more.error, Number(more.step), Number(more.resumedFromStep)]).toEqual(["JOB_STATE_COMPLETED", "", 12, 6]);
      // The first run's final evaluation (step 6) stays in the history.
      expect(more.evaluations.map((e) => Number(e.step))).toEqual([4, 6, 8, 12]);
      expect(more.evaluations[1]!.auc).toBe(first.evaluations[1]!.auc);
      // The same compute process served the steps after the restart.
      expect(c.process("compute")!.child.pid).toBe(computePid);
      expect(c.process("compute")!.exitCode).toBeNull();

      // Completed at step 12 on a.tsv; a compute reading b.tsv is refused by the orchestrator that resumes it.
      c.process("orchestrator")!.child.kill("SIGTERM");
      c.process("compute")!.child.kill("SIGTERM");
      await c.process("orchestrator")!.exited;
      await c.process("compute")!.exited;
      await c.restart("orchestrator", ["--resume", "--steps", "12"]);
      const refused = await c.restart("compute", ["--data", b]).then(() => null, (e: Error) => e);
      // A refusal of how it was started, exit 2 (make docker-up keeps the earlier start's settings on one).
      expect(refused?.message).toMatch(/^compute exited with code 2 while starting/);
      const log = readFileSync(c.process("compute")!.logPath, "utf8");
      expect(log).toContain("COMPUTE_ERR_REFUSED: registering with orchestrator at ");
      const line = log.split("\n").find((l) => l.includes("ORCH_ERR_CHECKPOINT_MISMATCH"))!;
      expect(line.slice(line.indexOf("refused: "))).toBe(
        `refused: the job completed at step 12 on other data: the checkpoint trained on 2,700 training records (Criteo TSV ${a} (3000 records)), this job's data has 1,800 training records (Criteo TSV ${b} (2000 records)); give it the data it trained on, or start a new job for this data (another --job-id; under Docker, make docker-down first)`,
      );
      const s = await status.get();
      expect([s.state, Number(s.step)]).toEqual(["JOB_STATE_COMPLETED", 12]);
    } finally {
      status.close();
    }
  }, 240_000);
});
