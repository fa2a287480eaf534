import { existsSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { ORCHESTRATOR_SERVICE_NAME, BATCH_STREAM_SERVICE_NAME, PARAMETER_SERVER_SERVICE_NAME, orchestratorClient, parameterServerClient, unary } from "@pangea/rpc";
import { DataType, MessageType, decodeMessage, encodeMessage, writeTensor, type JobStatus__Output } from "@pangea/schema";
import { ENTRY, closedPort, lastLine, runNode, waitFor } from "../support/processes.js";
import { HEALTH_SERVING, checkHealth } from "../support/health.js";
import { RowLayout, dlrmSpec } from "@pangea/model";
import { ParameterClient } from "../../services/trainer/src/cluster/parameters.js";
import { TrainerErrors } from "../../services/trainer/src/errors.js";

const tmp = mkdtempSync(join(tmpdir(), "pangea-fail-"));
const readLog = (path: string) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
};
let cluster: LocalCluster | null = null;

afterEach(async () => {
  await cluster?.stop(1_000);
  cluster = null;
});

async function startLongJob(name: string, trainers = 2, psShards = 1, orchestratorExtra: string[] = [], trainerExtra: string[] = []): Promise<{ c: LocalCluster; status: StatusClient }> {
  const c = await LocalCluster.start({
    trainers,
    psShards,
    logDir: join(tmp, name),
    orchestratorArgs: ["--steps", "100000", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt"), ...orchestratorExtra],
    computeArgs: ["--eval-records", "1000"],
    trainerArgs: [...trainerExtra],
  });
  cluster = c;
  const status = new StatusClient(c.orchestratorAddress);
  await status.connect(5_000);
  await waitFor("training to start", async () => Number((await status.get()).step) >= 3, 30_000);
  return { c, status };
}

describe("a running job's services", () => {
  // One job (2 trainers, one parameter server) serves both checks; neither changes what the other looks at.
  let job: { c: LocalCluster; status: StatusClient };
  beforeAll(async () => {
    job = await startLongJob("health");
    // The file's afterEach stops `cluster`: this job is stopped after both checks instead.
    cluster = null;
  });
  afterAll(async () => {
    job?.status.close();
    await job?.c.stop(1_000);
  });

  it("every service answers grpc.health.v1 with SERVING", async () => {
    const { c } = job;
    expect(await checkHealth(c.orchestratorAddress, ORCHESTRATOR_SERVICE_NAME)).toBe(HEALTH_SERVING);
    expect(await checkHealth(c.orchestratorAddress, PARAMETER_SERVER_SERVICE_NAME)).toBe(HEALTH_SERVING);
    expect(await checkHealth(c.computeAddress, BATCH_STREAM_SERVICE_NAME)).toBe(HEALTH_SERVING);
    expect(c.trainerAddresses).toHaveLength(2);
    for (const t of c.trainerAddresses) expect(await checkHealth(t, "pangea.v1.Trainer")).toBe(HEALTH_SERVING);
  });

  it("the parameter server's table API: stats, assign, evict over Cap'n Proto gRPC; bad input gets INVALID_ARGUMENT", async () => {
    const { c } = job;
    const client = parameterServerClient(c.orchestratorAddress);
    const call = <T>(method: "assign" | "evict" | "tableStats", bytes: Buffer) =>
      unary<Buffer, Buffer>("orchestrator", client[method].bind(client), bytes).then((b) => decodeMessage(b, MessageType.TABLE_STATS).payload as unknown as T);
    type Stats = { rows: bigint; changed: bigint; slots: { length: number } };
    const stats = await call<Stats>("tableStats", encodeMessage(MessageType.TABLE_STATS_REQUEST, "t", (r) => r._initSlots(0)));
    expect(stats.rows).toBeGreaterThan(0n);
    expect(stats.slots.length).toBe(26);
    const id = Uint32Array.from([123456, (1 << 16) >>> 0]);
    const assigned = await call<Stats>("assign", encodeMessage(MessageType.EMBEDDING_ASSIGN, "t", (a) => {
      writeTensor(a._initIds(), "ids", DataType.UINT64, [1], id);
      writeTensor(a._initEmbeddings(), "e", DataType.FLOAT32, [1, 16], new Float32Array(16).fill(0.5));
    }));
    expect(assigned.changed).toBe(1n);
    const evicted = await call<Stats>("evict", encodeMessage(MessageType.EMBEDDING_EVICT, "t", (e) => writeTensor(e._initIds(), "ids", DataType.UINT64, [1], id)));
    expect(evicted.changed).toBe(1n);
    const unknown = Uint32Array.from([1, (999 << 16) >>> 0]);
    await expect(
      call("assign", encodeMessage(MessageType.EMBEDDING_ASSIGN, "t", (a) => {
        writeTensor(a._initIds(), "ids", DataType.UINT64, [1], unknown);
        writeTensor(a._initEmbeddings(), "e", DataType.FLOAT32, [1, 16], new Float32Array(16));
      })),
    ).rejects.toMatchObject({ code: 3, details: expect.stringContaining("ORCH_ERR_UNKNOWN_SLOT: feature id") });
    client.close();
  });

  it("a trainer's pull refused as INVALID_ARGUMENT (an id of an undeclared slot) is TRAINER_ERR_REFUSED, which ends the trainer: not a lost orchestrator it would register with again, forever", async () => {
    const spec = dlrmSpec(13, 26, 16, [64, 16], [64, 32]);
    const slots = Array.from({ length: 26 }, (_, s) => s + 1);
    const params = new ParameterClient(job.c.orchestratorAddress, "trainer-probe", 0, [], RowLayout.of(spec, slots));
    const unknown = Uint32Array.from([7, (999 << 16) >>> 0]);
    const err = await params.pull(0, unknown, 1, false, true, null).then(() => null, (e: unknown) => e as Error);
    params.close();
    expect(TrainerErrors.is(err, "TRAINER_ERR_REFUSED"), String(err)).toBe(true);
    expect(err!.message).toMatch(/^pull for step 0: orchestrator at .*: INVALID_ARGUMENT: ORCH_ERR_UNKNOWN_SLOT: feature id \d+ has slot 999, which the job's data does not declare$/);
  });
  it("a training pull (sent ahead or not) without the rank's worker token is PERMISSION_DENIED (it made rows as rank 0's); one sent ahead that is read-only or names too many batches, or a step of -1, gets INVALID_ARGUMENT", async () => {
    const spec = dlrmSpec(13, 26, 16, [64, 16], [64, 32]);
    const slots = Array.from({ length: 26 }, (_, s) => s + 1);
    const params = new ParameterClient(job.c.orchestratorAddress, "trainer-probe", 0, [], RowLayout.of(spec, slots));
    const id = Uint32Array.from([7, (1 << 16) >>> 0]);
    const refused = /PERMISSION_DENIED: ORCH_ERR_PERMISSION_DENIED: training pull for rank 0 for trainer \S+ refused: it carries no worker_token/;
    await expect(params.pullAhead(0, { batches: [0], workingOn: [] }, id, 1, null, { batchIndex: 0, nnz: 1, idsSeal: "" })).rejects.toThrow(refused);
    await expect(params.pull(0, id, 1, false, false, null)).rejects.toThrow(refused);
    params.close();
    const client = parameterServerClient(job.c.orchestratorAddress);
    const ahead = (readOnly: boolean, batches: number) =>
      unary<Buffer, Buffer>("orchestrator", client.pull.bind(client), encodeMessage(MessageType.PARAMETER_REQUEST, "t", (r) => {
        r.step = 1_000_000n;
        r.readOnly = readOnly;
        writeTensor(r._initIds(), "ids", DataType.UINT64, [1], id);
        const list = r._initAheadBatches(batches);
        for (let i = 0; i < batches; i++) list.set(i, BigInt(i));
      }));
    await expect(ahead(true, 1)).rejects.toMatchObject({ code: 3, details: expect.stringContaining("a read-only pull cannot be sent ahead") });
    await expect(ahead(false, 5000)).rejects.toMatchObject({ code: 3, details: expect.stringContaining("5000 batches named, at most 4096") });
    // A step or batch index of -1 sent as unsigned, in a pull or a push (a push's before its gradients are read): named
    // as sent, not as Number's 18446744073709552000.
    const beyond = (call: "pull" | "push", what: string, field: string, v: bigint) =>
      expect(unary<Buffer, Buffer>("orchestrator", client[call].bind(client), encodeMessage(call === "pull" ? MessageType.PARAMETER_REQUEST : MessageType.GRADIENT_UPDATE, "t", (m) => {
        (m as unknown as Record<string, bigint>)[field] = v;
        if (call === "pull") writeTensor((m as unknown as { _initIds(): Parameters<typeof writeTensor>[0] })._initIds(), "ids", DataType.UINT64, [1], id);
      }))).rejects.toMatchObject({ code: 3, details: `ORCH_ERR_BAD_REQUEST: ${what}: ${field} ${v} is beyond any job's (a negative ${field} sent as an unsigned 64-bit number reads so)` });
    await beyond("pull", "pull from rank 0", "step", (1n << 64n) - 1n);
    await beyond("pull", "pull from rank 0", "batchIndex", (1n << 64n) - 1n);
    await beyond("push", "push from rank 0", "batchIndex", (1n << 64n) - 2n);
    client.close();
  });

  it("a pull whose rows could not be sent in one message is RESOURCE_EXHAUSTED before any row is read (it built a 283 MB answer, then failed in grpc-js)", async () => {
    const client = parameterServerClient(job.c.orchestratorAddress);
    const n = 4_200_000;
    const ids = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) ids[2 * i + 1] = (1 << 16) >>> 0;
    const request = encodeMessage(MessageType.PARAMETER_REQUEST, "t", (r) => {
      r.readOnly = true;
      writeTensor(r._initIds(), "ids", DataType.UINT64, [n], ids);
    });
    await expect(unary<Buffer, Buffer>("orchestrator", client.pull.bind(client), request)).rejects.toMatchObject({
      code: 8,
      details: "ORCH_ERR_TOO_LARGE: pull from rank 0: the rows of its 4,200,000 ids would make an answer of 302,400,000 bytes, above the 268,435,456 a message may carry; pull unique ids, fewer at a time",
    });
    client.close();
  });
});

describe("failures mid-job end the job with one clear reason, and nothing hangs", () => {
  it("with --on-trainer-loss fail, a trainer killed with SIGKILL fails the job naming it, and the other trainer exits 1", async () => {
    const { c, status } = await startLongJob("kill-trainer", 2, 1, ["--on-trainer-loss", "fail"]);
    const [t0, t1] = c.trainers();
    t1!.child.kill("SIGKILL");
    const failed = await waitFor("the job to fail", async () => {
      const s = await status.get();
      return s.state === "JOB_STATE_FAILED" ? s : null;
    }, 10_000);
    expect(failed.error).toMatch(/^ORCH_ERR_JOB_ABORTED: trainer trainer-1 \(rank \d\) disconnected at step \d+ of 100000$/);
    // The summary's "from N lost trainers" counts it (it said 0 beside the trainer named in the error).
    expect(Number(failed.deadTrainers)).toBe(1);
    const code = await Promise.race([t0!.exited, new Promise((r) => setTimeout(() => r("still running"), 10_000))]);
    expect(code).toBe(1);
    expect(t0!.lastLine).toMatch(/^pangea-trainer: error TRAINER_ERR_JOB_FAILED: .*trainer trainer-1 \(rank \d\) disconnected/);
    // Started again under its id (Docker's restart policy): it was live when the job failed, yet it is told the job
    // had ended and exits 0, so it is not restarted again and again (it took its place and exited 1 each time).
    await c.restart("trainer-0");
    const again = c.process("trainer-0")!;
    expect(await Promise.race([again.exited, new Promise((r) => setTimeout(() => r("still running"), 15_000))])).toBe(0);
    expect(readFileSync(again.logPath, "utf8")).toContain("the job had already ended (completed or failed) when this trainer joined; nothing to do");
    status.close();
  });

  it("a parameter-server shard killed: the job fails naming it, trainers exit 1", async () => {
    const { c, status } = await startLongJob("kill-shard", 1, 2);
    c.processes.find((p) => p.name === "shard-1")!.child.kill("SIGKILL");
    const failed = await waitFor("the job to fail", async () => {
      const s = await status.get();
      return s.state === "JOB_STATE_FAILED" ? s : null;
    }, 10_000);
    expect(failed.error).toMatch(/^ORCH_ERR_JOB_ABORTED: parameter-server shard shard-1 \(index 1\) disconnected at step \d+ of 100000$/);
    const code = await Promise.race([c.trainers()[0]!.exited, new Promise((r) => setTimeout(() => r("still running"), 15_000))]);
    expect(code).toBe(1);
    status.close();
  });

  it("compute killed and not restarted: after --rejoin-timeout-ms trainers exit 1 naming compute (and with --on-trainer-loss fail the job fails)", async () => {
    const { c, status } = await startLongJob("kill-compute", 1, 1, ["--on-trainer-loss", "fail"], ["--rejoin-timeout-ms", "1500", "--connect-timeout-ms", "1000"]);
    c.processes.find((p) => p.name === "compute")!.child.kill("SIGKILL");
    const [t0] = c.trainers();
    const code = await Promise.race([t0!.exited, new Promise((r) => setTimeout(() => r("still running"), 15_000))]);
    expect(code).toBe(1);
    expect(t0!.lastLine).toMatch(new RegExp(`TRAINER_ERR_LOST_PEER: .*compute at ${c.computeAddress}`));
    const s = await waitFor("the job to fail", async () => ((await status.get()).state === "JOB_STATE_FAILED" ? status.get() : null), 10_000);
    expect(s.error).toContain("trainer-0 (rank 0) disconnected");
    status.close();
  });

  it("orchestrator killed and not restarted: after --rejoin-timeout-ms trainers exit 3 naming the orchestrator", async () => {
    const { c, status } = await startLongJob("kill-orchestrator", 1, 1, [], ["--rejoin-timeout-ms", "1500"]);
    status.close();
    c.processes.find((p) => p.name === "orchestrator")!.child.kill("SIGKILL");
    const [t0] = c.trainers();
    const code = await Promise.race([t0!.exited, new Promise((r) => setTimeout(() => r("still running"), 15_000))]);
    expect(code).toBe(3);
    expect(t0!.lastLine).toBe(`pangea-trainer: error RPC_ERR_UNREACHABLE: cannot reach orchestrator at ${c.orchestratorAddress} within 1.5s: connection refused (nothing listens at that port)`);
  });
});

describe("unreachable peers and bad configuration", () => {
  it("pangea run killed with SIGKILL: its services stop by themselves instead of running on with nobody to stop them; the same command with --resume finishes the job from its newest checkpoint", async () => {
    const dir = join(tmp, "launcher-killed");
    const ckpt = join(tmp, "ckpt-launcher");
    const steps = 300;
    // What the README advises for a job that may be stopped: a job id, periodic checkpoints, and --resume from the first start on.
    const args = [ENTRY.cli, "run", "--job-id", "killed", "--steps", String(steps), "--checkpoint-every-steps", "10", "--keep-checkpoints", "0", "--resume", "--batch-size", "64", "--eval-records", "500", "--checkpoint-dir", ckpt];
    const run = spawn(process.execPath, [...args, "--log-dir", dir], { stdio: "ignore" });
    const names = ["orchestrator", "compute", "trainer-0", "trainer-1"];
    const pidOf = (name: string) => {
      const m = /"pid":(\d+)/.exec(readLog(join(dir, `${name}.log`)));
      return m ? Number(m[1]) : 0;
    };
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor("every service logging", async () => names.every((n) => pidOf(n) > 0), 60_000);
    const pids = names.map(pidOf);
    expect(pids.every(alive)).toBe(true);
    // A checkpoint is renamed into place whole (step-N.tmp-PID until then), so a step-N directory is one to resume from.
    const checkpoints = () => (existsSync(join(ckpt, "killed")) ? readdirSync(join(ckpt, "killed")).filter((n) => /^step-\d+$/.test(n)).map((n) => Number(n.slice(5))) : []);
    await waitFor("a first checkpoint", async () => checkpoints().length > 0, 60_000, 20);
    run.kill("SIGKILL");
    await waitFor("the services to exit", async () => !pids.some(alive), 20_000, 100);
    const saved = checkpoints();
    const newest = Math.max(...saved);
    expect(newest).toBeLessThan(steps);
    const again = await runNode(ENTRY.cli, [...args.slice(1), "--json", "--log-dir", join(tmp, "launcher-again")], { timeoutMs: 120_000, stopSignal: "SIGTERM" });
    expect(again.code, again.stderr).toBe(0);
    const s = JSON.parse(again.stdout.trim().split("\n").at(-1)!) as JobStatus__Output;
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(Number(s.resumedFromStep)).toBe(newest);
    expect(Number(s.step)).toBe(steps);
    // Every batch of the job applied once, across both lives.
    expect([Number(s.batchesApplied), Number(s.missingBatches), Number(s.duplicateBatches)]).toEqual([2 * steps, 0, 0]);
    expect(again.stderr).toContain(`resumed from step ${newest}`);
  }, 240_000);

  it("pangea run whose own last trainer is killed goes on while a trainer started by hand trains, and counts it", async () => {
    const dir = join(tmp, "hand-trainer");
    const run = spawn(process.execPath, [ENTRY.cli, "run", "--trainers", "1", "--mode", "async", "--steps", "100000", "--batch-size", "64", "--eval-records", "500", "--checkpoint-dir", join(tmp, "ckpt-hand"), "--log-dir", dir], { stdio: ["ignore", "pipe", "pipe"] });
    let said = "";
    run.stdout.on("data", (d: Buffer) => (said += d));
    run.stderr.on("data", (d: Buffer) => (said += d));
    const ended = new Promise<number | null>((r) => run.once("exit", (code) => r(code)));
    const hand = spawn(process.execPath, [ENTRY.trainer, "--host", "127.0.0.1", "--port", "0", "--worker-id", "by-hand", "--orchestrator", (await waitFor("the run's addresses", async () => /^orchestrator (\S+),/m.exec(said)?.[1], 60_000))], { stdio: "ignore" });
    try {
      const address = /^orchestrator (\S+),/m.exec(said)![1]!;
      const status = new StatusClient(address);
      await status.connect(10_000);
      try {
        await waitFor("the hand-started trainer to train", async () => (await status.get()).workers.some((w) => w.workerId === "by-hand" && w.alive && Number(w.batchesDone) > 0), 60_000);
      } finally {
        status.close();
      }
      // A registration that opens no session (anyone may send one) trains nothing and is not counted.
      const c = orchestratorClient(address);
      await unary("orchestrator", c.RegisterWorker.bind(c), { workerId: "ghost", kind: "WORKER_KIND_TRAINER", address: "" }, 5_000).finally(() => c.close());
      // The run's status poll has seen both (every 0.2 s).
      await new Promise((r) => setTimeout(r, 500));
      process.kill(Number(/"pid":(\d+)/.exec(readLog(join(dir, "trainer-0.log")))![1]), "SIGKILL");
      await waitFor("the run to report the loss", async () => said.includes("the job goes on"), 30_000);
      expect(said).toMatch(/trainer-0 exited with code 137 \(killed by SIGKILL; log: \S+\); the job goes on with 1 trainer \(1 not started by this run\)\n/);
      // It goes on: the run did not stop the cluster (it had, taking trainer-0 for the job's last trainer).
      expect(await Promise.race([ended, new Promise((r) => setTimeout(() => r("running"), 3_000))])).toBe("running");
      // The trainer started by hand gone too, no trainer is left: the run ends as for its own last trainer, within seconds.
      hand.kill("SIGKILL");
      const gone = Date.now();
      expect(await ended).toBe(1);
      expect(Date.now() - gone).toBeLessThan(20_000);
      expect(said).toContain("no trainer is left: this run's have exited, and none started by hand is in session with the orchestrator (for 5 s)");
      // The summary counts the trainer started by hand among those the job trained on (it said 1).
      expect(said).toMatch(/\n  backend +\S+ on 2 trainers/);
    } finally {
      hand.kill("SIGKILL");
      run.kill("SIGTERM");
      await ended;
    }
  }, 120_000);

  it("pangea run whose orchestrator is killed with SIGKILL exits 1 naming it, then says where the job's checkpoints are and which flags continue from them; --json prints the newest status read, marked failed", async () => {
    const dir = join(tmp, "orchestrator-killed");
    const ckpt = join(tmp, "ckpt-orchestrator-killed");
    // No --job-id: the hint names the one the orchestrator made up.
    const run = runNode(ENTRY.cli, ["run", "--json", "--steps", "100000", "--checkpoint-every-steps", "5", "--batch-size", "64", "--eval-records", "500", "--checkpoint-dir", ckpt, "--log-dir", dir], { timeoutMs: 120_000, stopSignal: "SIGTERM" });
    const log = join(dir, "orchestrator.log");
    const saved = () => readLog(log).split("\n").filter((l) => l.includes('"checkpoint saved"')).length;
    await waitFor("a second checkpoint", async () => saved() >= 2, 60_000, 20);
    process.kill(Number(/"pid":(\d+)/.exec(readLog(log))![1]), "SIGKILL");
    const r = await run;
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines.at(-2)).toBe(`pangea run: job failed: orchestrator exited with code 137: killed by SIGKILL (log: ${log})`);
    const job = readdirSync(ckpt)[0]!;
    expect(job).toMatch(/^job-/);
    const steps = readdirSync(join(ckpt, job)).filter((n) => /^step-\d+$/.test(n)).map((n) => Number(n.slice(5)));
    expect(steps.length).toBeGreaterThanOrEqual(2);
    const hint = /^pangea run: checkpoints of job (\S+) are in (.+) \(newest written: step-(\d+)\); the same command with --resume --job-id (\S+) continues from the newest intact one$/.exec(lines.at(-1)!);
    expect(hint, lines.at(-1)).not.toBeNull();
    expect([hint![1], hint![2], hint![4]]).toEqual([job, join(ckpt, job), job]);
    // The newest on disk, or the one before it when the kill came between a checkpoint's rename and its log line.
    expect(steps).toContain(Number(hint![3]));
    expect(Number(hint![3])).toBeGreaterThanOrEqual(Math.max(...steps) - 5);
    // A script reading the JSON must not take the stopped job for a running one (it had printed nothing).
    const s = JSON.parse(r.stdout.trim()) as JobStatus__Output & { stoppedByRun?: boolean };
    expect([s.jobId, s.state, s.error, s.stoppedByRun]).toEqual([job, "JOB_STATE_FAILED", `orchestrator exited with code 137: killed by SIGKILL (log: ${log})`, true]);
    expect(Number(s.step)).toBeGreaterThan(0);
  }, 180_000);

  it("pangea run whose parameter-server shard is killed: the job fails naming it, and the last line says how to continue from the checkpoints", async () => {
    const dir = join(tmp, "shard-killed");
    const ckpt = join(tmp, "ckpt-shard-killed");
    const run = runNode(ENTRY.cli, ["run", "--job-id", "sk", "--ps-shards", "2", "--steps", "100000", "--checkpoint-every-steps", "5", "--batch-size", "64", "--eval-records", "500", "--checkpoint-dir", ckpt, "--log-dir", dir], { timeoutMs: 120_000, stopSignal: "SIGTERM" });
    const log = join(dir, "orchestrator.log");
    await waitFor("a checkpoint", async () => readLog(log).includes('"checkpoint saved"'), 60_000, 20);
    process.kill(Number(/"pid":(\d+)/.exec(readLog(join(dir, "shard-1.log")))![1]), "SIGKILL");
    const r = await run;
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines.at(-2)).toMatch(/^pangea run: job failed: ORCH_ERR_JOB_ABORTED: parameter-server shard shard-1 \(index 1\) disconnected at step \d+ of 100000/);
    expect(lines.at(-1)).toMatch(new RegExp(`^pangea run: checkpoints of job sk are in ${join(ckpt, "sk")} \\(newest written: step-\\d+\\); the same command with --resume --job-id sk continues from the newest intact one$`));
  }, 180_000);

  it("a trainer whose orchestrator is unreachable exits 3 within its timeout, naming the address", async () => {
    const port = await closedPort();
    const r = await runNode(ENTRY.trainer, ["--orchestrator", `127.0.0.1:${port}`, "--connect-timeout-ms", "800", "--backend", "cpu"], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(3);
    expect(lastLine(r.stderr)).toBe(`pangea-trainer: error RPC_ERR_UNREACHABLE: cannot reach orchestrator at 127.0.0.1:${port} within 0.8s: connection refused (nothing listens at that port)`);
    expect(r.ms).toBeLessThan(10_000);
  });

  it("a compute refused while another holds the job's place (its session still open) asks again, and takes the place once the other is seen gone (a stopped process: the orchestrator's pings go unanswered)", async () => {
    const start = (entry: string, args: string[]) => {
      const child = spawn(process.execPath, [entry, ...args], { stdio: ["ignore", "pipe", "pipe"] });
      let text = "";
      child.stdout!.on("data", (d: Buffer) => (text += d));
      child.stderr!.on("data", (d: Buffer) => (text += d));
      return { child, text: () => text };
    };
    const orch = start(ENTRY.orchestrator, ["--port", "0", "--trainers", "1", "--steps", "5", "--register-timeout-ms", "60000"]);
    const procs = [orch];
    try {
      const address = await waitFor("the orchestrator's ready line", async () => /"ready":"orchestrator","address":"([^"]+)"/.exec(orch.text())?.[1], 20_000);
      const computeArgs = ["--port", "0", "--orchestrator", address, "--eval-records", "100", "--connect-timeout-ms", "40000"];
      const a = start(ENTRY.compute, [...computeArgs, "--worker-id", "compute-a"]);
      procs.push(a);
      await waitFor("compute-a to register", async () => a.text().includes('"ready":"compute"'), 30_000);
      // Stopped, compute-a's connection stays open: the orchestrator still holds its session.
      a.child.kill("SIGSTOP");
      const b = start(ENTRY.compute, [...computeArgs, "--worker-id", "compute-b"]);
      procs.push(b);
      await waitFor("compute-b to be told another holds the place", async () => b.text().includes("another compute holds the job's place; asking again"), 20_000);
      expect(b.text()).toContain("compute compute-b refused: compute compute-a is registered and connected");
      // compute-a stays stopped: its connection is closed when two keepalive pings of 10 s go unanswered.
      const stoppedAt = Date.now();
      await waitFor("compute-b to register", async () => b.text().includes('"ready":"compute"'), 28_000, 500);
      expect(Date.now() - stoppedAt).toBeGreaterThan(5_000);
      expect(b.child.exitCode).toBeNull();
    } finally {
      for (const p of procs) p.child.kill("SIGKILL");
    }
  }, 90_000);

  it("compute whose orchestrator is unreachable exits 3", async () => {
    const port = await closedPort();
    const r = await runNode(ENTRY.compute, ["--port", "0", "--orchestrator", `127.0.0.1:${port}`, "--connect-timeout-ms", "500", "--eval-records", "0"]);
    expect(r.code, r.stderr).toBe(3);
    expect(lastLine(r.stderr)).toBe(`pangea-compute: error RPC_ERR_UNREACHABLE: cannot reach orchestrator at 127.0.0.1:${port} within 0.5s: connection refused (nothing listens at that port)`);
  });

  it("an orchestrator whose workers never come fails the job after --register-timeout-ms", async () => {
    const child = spawn(process.execPath, [ENTRY.orchestrator, "--port", "0", "--trainers", "1", "--register-timeout-ms", "1000"]);
    try {
      const address = await new Promise<string>((resolve) =>
        createInterface({ input: child.stdout }).on("line", (l) => resolve((JSON.parse(l) as { address: string }).address)),
      );
      const status = new StatusClient(address);
      const s = await waitFor("the job to fail", async () => {
        const st = await status.get();
        return st.state === "JOB_STATE_FAILED" ? st : null;
      }, 10_000);
      status.close();
      expect(s.error).toBe("ORCH_ERR_REGISTER_TIMEOUT: timed out after 1s waiting for workers: 0/1 trainers connected, compute not registered");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
