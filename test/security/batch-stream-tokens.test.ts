import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { batchStreamClient, type BatchStreamClient } from "@pangea/rpc";
import { MessageType, Split, encodeMessage, type JobStatus__Output } from "@pangea/schema";
import { waitFor } from "../support/processes.js";
import { fromPeer } from "../support/peer-named.js";

/**
 * The lock-out of the open problems, replayed against a real plaintext
 * cluster: a client that can reach compute (anyone, in plaintext) asks for
 * every place --max-batch-streams leaves while the trainers train. Without
 * a registration it gets none, and the trainers' evaluations, which open
 * streams of their own while training and at the end, are served: the job
 * completes with every evaluation.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-sec-streams-"));
const clusters: LocalCluster[] = [];
const clients: BatchStreamClient[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  for (const c of clusters) await c.stop(1_000);
  rmSync(tmp, { recursive: true, force: true });
});

/** A stream asking for everything and never reading it, as a trainer's rank 0 would, without a token. */
function hostileStream(address: string) {
  const cl = batchStreamClient(address);
  clients.push(cl);
  const call = cl.streamBatches();
  let error: grpc.ServiceError | null = null;
  call.on("error", (e: grpc.ServiceError) => (error = e));
  call.write(
    encodeMessage(MessageType.BATCH_REQUEST, "rogue", (r) => {
      r.workerRank = 0;
      r.worldSize = 1;
      r.batchSize = 4096;
      r.maxBatches = 1_000_000n;
      r.split = Split.TRAIN;
      r.window = 64;
      r.tokenRank = 0;
    }),
  );
  return { call, error: () => error };
}

describe("a cluster whose compute is flooded with batch streams by a client holding no registration", () => {
  it("refuses every such stream with PERMISSION_DENIED while the trainers train, evaluate and complete the job", async () => {
    const c = await LocalCluster.start({
      trainers: 2,
      logDir: join(tmp, "job"),
      orchestratorArgs: ["--steps", "60", "--batch-size", "256", "--seed", "7", "--eval-every-steps", "20", "--checkpoint-dir", join(tmp, "job", "ckpt")],
      // Few places, so the flood would take them all: the trainers' feeds hold two, each evaluation needs one more.
      computeArgs: ["--seed", "7", "--eval-records", "2000", "--max-batch-streams", "4"],
      trainerArgs: ["--blas-threads", "1"],
    });
    clusters.push(c);
    const status = new StatusClient(c.orchestratorAddress, null);
    await status.connect(10_000);
    await waitFor("training to start", async () => Number((await status.get()).step) >= 2, 60_000);

    const flood = Array.from({ length: 8 }, () => hostileStream(c.computeAddress));
    await waitFor("every hostile stream answered", async () => flood.every((f) => f.error() !== null), 20_000);
    for (const f of flood) {
      expect(f.error()).toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
        details: fromPeer("COMPUTE_ERR_STREAM_TOKEN: batch stream from rogue for rank 0 refused: it carries no worker token; expected the token the orchestrator gave rank 0's trainer when it registered", "rogue"),
      });
    }

    const end = await waitFor<JobStatus__Output>("the job to end", async () => {
      const s = await status.get();
      return s.state === "JOB_STATE_COMPLETED" || s.state === "JOB_STATE_FAILED" ? s : null;
    }, 240_000, 300);
    status.close();
    expect([end.state, end.error]).toEqual(["JOB_STATE_COMPLETED", ""]);
    // Evaluations at steps 20, 40 and the end, each from a stream opened while the flood was being refused.
    expect([...new Set(end.evaluations.map((e) => Number(e.step)))]).toEqual([20, 40, 60]);
  }, 300_000);
});
