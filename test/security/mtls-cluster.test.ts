import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { batchStreamClient, loadTransportSecurity, orchestratorClient, parameterServerClient, unary, writeClusterCerts, type TransportSecurity } from "@pangea/rpc";
import { DataType, MessageType, encodeMessage, writeTensor, type JobStatus__Output } from "@pangea/schema";
import { waitFor } from "../support/processes.js";

/**
 * The attacks of the trust issue, replayed against a real cluster running
 * with mutual TLS (per-worker trainer certificates, as `pangea run --tls`
 * makes them): each is refused with the status naming the reason, and the
 * attacked job ends with the same model as the same job run without TLS and
 * without attackers.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-sec-mtls-"));
const tls = join(tmp, "tls");
writeClusterCerts(tls, { workers: [0, 1, 9].map((i) => ({ role: "trainer" as const, name: `trainer-${i}` })) });
const as = (name: string): TransportSecurity => loadTransportSecurity(tls, name);
const clusters: LocalCluster[] = [];

afterAll(async () => {
  for (const c of clusters) await c.stop(1_000);
  rmSync(tmp, { recursive: true, force: true });
});

async function startJob(name: string, withTls: boolean): Promise<{ c: LocalCluster; status: StatusClient }> {
  const c = await LocalCluster.start({
    trainers: 2,
    logDir: join(tmp, name),
    orchestratorArgs: ["--steps", "80", "--batch-size", "256", "--seed", "7", "--checkpoint-dir", join(tmp, name, "ckpt"), "--job-id", "same-job"],
    computeArgs: ["--seed", "7", "--eval-records", "4000"],
    trainerArgs: ["--blas-threads", "1"],
    ...(withTls ? { tlsDir: tls } : {}),
  });
  clusters.push(c);
  const status = new StatusClient(c.orchestratorAddress, withTls ? as("admin") : null);
  await status.connect(10_000);
  return { c, status };
}

async function finish(status: StatusClient): Promise<JobStatus__Output> {
  return waitFor("the job to end", async () => {
    const s = await status.get();
    return s.state === "JOB_STATE_COMPLETED" || s.state === "JOB_STATE_FAILED" ? s : null;
  }, 240_000, 300);
}

type Outcome = { code: number; details: string };
const outcome = (p: Promise<unknown>): Promise<Outcome> =>
  p.then(
    () => ({ code: grpc.status.OK, details: "" }),
    (e: grpc.ServiceError) => ({ code: e.code, details: e.details }),
  );

async function register(address: string, security: TransportSecurity | null, workerId: string, kind: string, extra: object = {}): Promise<Outcome> {
  const c = orchestratorClient(address, security);
  try {
    return await outcome(unary("orchestrator", c.RegisterWorker.bind(c), { workerId, kind, ...extra }, 5_000));
  } finally {
    c.close();
  }
}

function hugePush(rank: number, step: number): Buffer {
  return encodeMessage(MessageType.GRADIENT_UPDATE, "rogue", (g) => {
    g.workerRank = rank;
    g.step = BigInt(step);
    writeTensor(g._initDense(1).get(0), "w", DataType.FLOAT32, [2], Float32Array.of(3e38, 3e38));
  });
}

describe("a cluster under mutual TLS, attacked while it trains", () => {
  it("refuses every attack with the status that names it, and ends with the model an unattacked plaintext run ends with", async () => {
    const { c, status } = await startJob("attacked", true);
    await waitFor("training to start", async () => Number((await status.get()).step) >= 2, 60_000);
    const orch = c.orchestratorAddress;

    // No certificate at all: the orchestrator answers, but only to say who it wants.
    const anonymous = await register(orch, null, "trainer-0", "WORKER_KIND_TRAINER");
    expect(anonymous.code).toBe(grpc.status.UNAVAILABLE); // plaintext cannot even speak to a TLS port

    // Another worker's certificate cannot take trainer-0's place (the rogue trainer-0 attack).
    const impostor = await register(orch, as("trainer-9"), "trainer-0", "WORKER_KIND_TRAINER");
    expect(impostor.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(impostor.details).toContain('is for worker trainer-9 only');
    // Even the role's shared certificate cannot register a second trainer-0 while the real one is connected.
    const shared = await register(orch, as("trainer"), "trainer-0", "WORKER_KIND_TRAINER");
    expect(shared.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(shared.details).toContain("ORCH_ERR_WORKER_CONFLICT");
    // Nor can it act for trainer-0 without the token trainer-0's registration was given: no fake evaluation (it would
    // choose --keep-best's export), no backend line, no heartbeat or work taken in its name.
    const sharedClient = orchestratorClient(orch, as("trainer"));
    const forgedEval = await outcome(unary("orchestrator", sharedClient.ReportEval.bind(sharedClient), { workerId: "trainer-0", step: 80, records: 1000, auc: 0.999, logloss: 0.01, meanPrediction: 0.3, labelRate: 0.3 }, 5_000));
    expect([forgedEval.code, forgedEval.details]).toEqual([grpc.status.PERMISSION_DENIED, "ORCH_ERR_PERMISSION_DENIED: ReportEval for trainer trainer-0 refused: it carries no worker_token (RegisterWorker's response gives it)"]);
    const forgedBackend = await outcome(unary("orchestrator", sharedClient.ReportBackend.bind(sharedClient), { workerId: "trainer-0", workerToken: "guessed", backend: "forged" }, 5_000));
    expect([forgedBackend.code, forgedBackend.details]).toEqual([grpc.status.PERMISSION_DENIED, "ORCH_ERR_PERMISSION_DENIED: ReportBackend for trainer trainer-0 refused: its worker_token is not that of trainer-0's current registration (a worker that registered again uses the new one)"]);
    for (const [name, call] of [["Heartbeat", sharedClient.Heartbeat.bind(sharedClient)], ["GetWork", sharedClient.GetWork.bind(sharedClient)]] as const) {
      const forged = await outcome(unary("orchestrator", call as typeof sharedClient.GetWork, { workerId: "trainer-0" }, 5_000));
      expect([name, forged.code]).toEqual([name, grpc.status.PERMISSION_DENIED]);
    }
    // The job's status is for trainers and operators: a serving or compute certificate is refused.
    for (const role of ["serving", "compute"]) {
      const other = orchestratorClient(orch, as(role));
      const read = await outcome(unary("orchestrator", other.GetJobStatus.bind(other), {}, 5_000));
      expect([role, read.code]).toEqual([role, grpc.status.PERMISSION_DENIED]);
      other.close();
    }
    sharedClient.close();

    // A fake compute: a trainer certificate may not register one; a compute certificate may not replace the connected one.
    const source = { description: "synthetic", numDense: 13, slotIds: [1, 2], trainRecords: 1000, evalRecords: 10 };
    const fakeCompute = await register(orch, as("trainer-9"), "compute-evil", "WORKER_KIND_COMPUTE", { address: "127.0.0.1:1", source });
    expect(fakeCompute.code).toBe(grpc.status.PERMISSION_DENIED);
    const secondCompute = await register(orch, as("compute"), "compute-evil", "WORKER_KIND_COMPUTE", { address: "127.0.0.1:1", source });
    expect(secondCompute.code).toBe(grpc.status.ALREADY_EXISTS);

    // Table edits are for admin certificates only; a trainer's is refused.
    const ps = parameterServerClient(orch, as("trainer-0"));
    const evict = encodeMessage(MessageType.EMBEDDING_EVICT, "rogue", (e) => writeTensor(e._initIds(), "ids", DataType.UINT64, [1], Uint32Array.of(1, 1 << 16)));
    const evicted = await outcome(unary("orchestrator", ps.evict.bind(ps), evict, 5_000));
    expect(evicted.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(evicted.details).toContain("/pangea.v1.ParameterServer/Evict is for admin");
    ps.close();

    // A trainer's certificate pushes only for its own rank: trainer-9 pushing huge gradients as rank 0 is refused.
    const rogue = parameterServerClient(orch, as("trainer-9"));
    const step = Number((await status.get()).step);
    const pushed = await outcome(unary("orchestrator", rogue.push.bind(rogue), hugePush(0, step), 5_000));
    expect(pushed.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(pushed.details).toContain("Push for rank 0");
    // Nor does it send pulls ahead for another rank (one would withdraw rank 0's own, or be served its batch).
    const ahead = encodeMessage(MessageType.PARAMETER_REQUEST, "rogue", (r) => {
      r.step = BigInt(step + 1);
      writeTensor(r._initIds(), "ids", DataType.UINT64, [1], Uint32Array.of(1, 1 << 16));
      r._initAheadBatches(1).set(0, BigInt(2 * (step + 1)));
    });
    const pulled = await outcome(unary("orchestrator", rogue.pull.bind(rogue), ahead, 5_000));
    expect(pulled.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(pulled.details).toContain("pull sent ahead for rank 0");
    // Nor has rank 0's rows written to its rows files (the next one recycles the file rank 0 may be reading).
    const rowsPull = encodeMessage(MessageType.PARAMETER_REQUEST, "rogue", (r) => {
      r.step = BigInt(step);
      r.rowsInFile = true;
      writeTensor(r._initIds(), "ids", DataType.UINT64, [1], Uint32Array.of(1, 1 << 16));
    });
    const rowsPulled = await outcome(unary("orchestrator", rogue.pull.bind(rogue), rowsPull, 5_000));
    expect(rowsPulled.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(rowsPulled.details).toContain("pull for rank 0 with its rows in a file");
    // Nor a training pull as rank 0 (it would count ids and make rows as rank 0's): the token is rank 0's alone.
    const trainingPull = encodeMessage(MessageType.PARAMETER_REQUEST, "rogue", (r) => {
      r.step = BigInt(step);
      writeTensor(r._initIds(), "ids", DataType.UINT64, [1], Uint32Array.of(7, 1 << 16));
    });
    const trained = await outcome(unary("orchestrator", rogue.pull.bind(rogue), trainingPull, 5_000));
    expect(trained.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(trained.details).toMatch(/^ORCH_ERR_PERMISSION_DENIED: training pull for rank 0 for trainer \S+ refused: it carries no worker_token/);
    rogue.close();

    // A fake evaluation report naming a real trainer, from another trainer's certificate.
    const o = orchestratorClient(orch, as("trainer-9"));
    const report = await outcome(unary("orchestrator", o.ReportEval.bind(o), { workerId: "trainer-0", step: 80, records: 1000, auc: 0.999, logloss: 0.01, meanPrediction: 0.3, labelRate: 0.3 }, 5_000));
    expect(report.code).toBe(grpc.status.PERMISSION_DENIED);
    // A checkpoint part reported by a trainer (a false "written", or an error to fail the job): only shards report parts.
    const part = await outcome(unary("orchestrator", o.ReportCheckpoint.bind(o), { workerId: "trainer-9", step: 80, path: "/tmp/x", error: "disk full" }, 5_000));
    expect(part.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(part.details).toContain("/pangea.v1.Orchestrator/ReportCheckpoint is for shard");
    // Nor a shard's failure report, which would end the job with its reason.
    const failure = await outcome(unary("orchestrator", o.ReportFailure.bind(o), { workerId: "trainer-9", code: "ORCH_ERR_MEMORY_LIMIT", message: "full" }, 5_000));
    expect(failure.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(failure.details).toContain("/pangea.v1.Orchestrator/ReportFailure is for shard");
    o.close();

    // Compute's batches are for trainers: a compute certificate cannot open a stream.
    const bs = batchStreamClient(c.computeAddress, as("compute"));
    const streamErr = await new Promise<grpc.ServiceError>((resolve) => {
      const s = bs.streamBatches();
      s.on("error", resolve);
      s.on("data", () => {});
      s.write(Buffer.alloc(8));
    });
    expect(streamErr.code).toBe(grpc.status.PERMISSION_DENIED);
    bs.close();
    // A trainer certificate's stream without the rank's token, its message claiming to be trainer-0: refused naming the
    // certificate it came with, not only the name it wrote (which had been all the refusal and compute's log said).
    const spoof = batchStreamClient(c.computeAddress, as("trainer-9"));
    const spoofErr = await new Promise<grpc.ServiceError>((resolve) => {
      const s = spoof.streamBatches();
      s.on("error", resolve);
      s.on("data", () => {});
      s.write(encodeMessage(MessageType.BATCH_REQUEST, "trainer-0", (r) => {
        r.workerRank = 0;
        r.worldSize = 1;
        r.batchSize = 256;
        r.maxBatches = 1n;
        r.window = 1;
        r.tokenRank = 0;
      }));
    });
    expect([spoofErr.code, spoofErr.details]).toEqual([grpc.status.PERMISSION_DENIED, "COMPUTE_ERR_STREAM_TOKEN: batch stream from trainer-0 (certificate trainer trainer-9) for rank 0 refused: it carries no worker token; expected the token the orchestrator gave rank 0's trainer when it registered"]);
    spoof.close();

    const attacked = await finish(status);
    status.close();
    expect(attacked.state).toBe("JOB_STATE_COMPLETED");
    expect(Number(attacked.embeddings?.rejectedGradients ?? 0)).toBe(0);

    const { status: plainStatus } = await startJob("plain", false);
    const plain = await finish(plainStatus);
    plainStatus.close();
    expect(plain.state).toBe("JOB_STATE_COMPLETED");
    // Same data, same seed, sync mode: the attacked run's model is the unattacked one's.
    expect(attacked.batchesApplied).toBe(plain.batchesApplied);
    expect(attacked.embeddingRows).toBe(plain.embeddingRows);
    expect(attacked.eval?.auc).toBe(plain.eval?.auc);
    expect(attacked.eval?.logloss).toBe(plain.eval?.logloss);
  }, 420_000);
});
