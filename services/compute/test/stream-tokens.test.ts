import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { batchStreamClient, orchestratorClient, unary, waitReady, type BatchStreamClient } from "@pangea/rpc";
import type { RegisterWorkerRequest, RegisterWorkerResponse__Output } from "@pangea/schema";
import { MessageType, Split, encodeMessage } from "@pangea/schema";
import { ENTRY, closedPort, waitFor } from "../../../test/support/processes.js";
import { metricValue } from "../../../test/support/metrics.js";
import { fromPeer } from "../../../test/support/peer-named.js";
import { startService, type RunningService } from "../../../test/support/service.js";

/**
 * Whose batch streams compute serves: real orchestrator and compute
 * processes; the test registers as trainers with the orchestrator (as a
 * trainer process does) and opens streams with the tokens it was given.
 */

const tmp = mkdtempSync(join(tmpdir(), "pangea-stream-tokens-"));
let started: RunningService[] = [];
const clients: BatchStreamClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of started.splice(0)) await s.stop();
});
afterAll(async () => {
  for (const s of started) await s.stop();
});

async function orchestrator(port = 0): Promise<RunningService> {
  const s = await startService(ENTRY.orchestrator, ["--host", "127.0.0.1", "--port", String(port), "--trainers", "2", "--checkpoint-dir", mkdtempSync(join(tmp, "ckpt-")), "--register-timeout-ms", "600000"]);
  started.push(s);
  return s;
}

/** Compute registered with the orchestrator at `orch` (its ready line comes once it has registered). */
async function compute(orch: string, extra: string[] = []): Promise<RunningService> {
  const s = await startService(ENTRY.compute, ["--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--orchestrator", orch, "--connect-timeout-ms", "120000", "--eval-records", "1000", ...extra]);
  started.push(s);
  return s;
}

interface Registration {
  rank: number;
  token: string;
}

/**
 * Compute whose orchestrator (at `port`) is not up: it serves batches while it waits to register. `registered`
 * resolves once it has (its ready line).
 */
async function waitingCompute(port: number, extra: string[] = []): Promise<{ address: string; registered: Promise<RunningService> }> {
  const own = await closedPort();
  const registered = startService(ENTRY.compute, ["--host", "127.0.0.1", "--port", String(own), "--metrics-port", "0", "--orchestrator", `127.0.0.1:${port}`, "--connect-timeout-ms", "120000", "--eval-records", "1000", ...extra], { timeoutMs: 120_000 });
  registered.then((s) => started.push(s), () => {});
  const address = `127.0.0.1:${own}`;
  const probe = batchStreamClient(address);
  try {
    await waitReady(probe, "compute", address, 20_000);
  } finally {
    probe.close();
  }
  return { address, registered };
}

/** Registers `workerId` as a trainer: the rank and worker token the orchestrator gives it. */
async function registerTrainer(orch: RunningService, workerId: string): Promise<Registration> {
  const c = orchestratorClient(orch.address);
  try {
    const res = await unary<RegisterWorkerRequest, RegisterWorkerResponse__Output>("orchestrator", c.RegisterWorker.bind(c), { workerId, kind: "WORKER_KIND_TRAINER", address: "" }, 5_000);
    return { rank: res.rank, token: res.workerToken };
  } finally {
    c.close();
  }
}

/** An on-demand request as a trainer's feed sends it: share 0 of 1 whatever its rank, with its registration. */
function request(reg: Registration): Buffer {
  return encodeMessage(MessageType.BATCH_REQUEST, `trainer-r${reg.rank}`, (r) => {
    r.workerRank = 0;
    r.worldSize = 1;
    r.batchSize = 64;
    r.split = Split.TRAIN;
    r.onDemand = true;
    r.workerToken = reg.token;
    r.tokenRank = reg.rank;
  });
}

const want = (indices: number[]) =>
  encodeMessage(MessageType.BATCH_ACK, "test", (a) => {
    const l = a._initWant(indices.length);
    indices.forEach((k, i) => l.set(i, BigInt(k)));
  });

/** A stream as a trainer opens it; it names batch 0 and reads what comes, recording its error. */
function open(c: { address: string }, reg: Registration) {
  const cl = batchStreamClient(c.address);
  clients.push(cl);
  const call = cl.streamBatches();
  let error: grpc.ServiceError | null = null;
  let received = 0;
  call.on("error", (e: grpc.ServiceError) => (error = e));
  call.on("data", () => received++);
  call.write(request(reg));
  call.write(want([0]));
  return { call, error: () => error, received: () => received };
}

/** Opens a stream and waits until it either got its first batch or failed. */
async function settled(c: { address: string }, reg: Registration) {
  const s = open(c, reg);
  await waitFor("the stream served or refused", async () => s.received() > 0 || s.error() !== null, 10_000);
  return s;
}

const metric = (c: { metrics?: string }, name: string) => metricValue(c.metrics!, name);

describe("batch streams once compute holds the orchestrator's token key", () => {
  it("refuses a stream carrying no worker token, or another rank's, with PERMISSION_DENIED naming the rank", async () => {
    const orch = await orchestrator();
    const c = await compute(orch.address);
    const r0 = await registerTrainer(orch, "trainer-a");
    const r1 = await registerTrainer(orch, "trainer-b");
    expect([r0.rank, r1.rank]).toEqual([0, 1]);

    const none = await settled(c, { rank: 0, token: "" });
    expect(none.error()).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: fromPeer("COMPUTE_ERR_STREAM_TOKEN: batch stream from trainer-r0 for rank 0 refused: it carries no worker token; expected the token the orchestrator gave rank 0's trainer when it registered", "trainer-r0"),
    });
    const other = await settled(c, { rank: 0, token: r1.token });
    expect(other.error()).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: fromPeer("COMPUTE_ERR_STREAM_TOKEN: batch stream from trainer-r0 for rank 0 refused: its worker token was not issued for rank 0; expected the token the orchestrator gave rank 0's trainer when it registered", "trainer-r0"),
    });
    // A token cut short (its MAC) is not the one issued either.
    expect((await settled(c, { rank: 1, token: r1.token.slice(0, -2) })).error()?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(none.received() + other.received()).toBe(0);

    // Each trainer with its own token is served.
    for (const reg of [r0, r1]) {
      const s = await settled(c, reg);
      expect([s.error(), s.received()]).toEqual([null, 1]);
    }

    // A flood of refused streams is logged a few a second, not one line each; the next line logged counts those left out.
    const failedLines = () => c.output().split("\n").filter((l) => l.includes('"batch stream failed"'));
    const before = failedLines().length;
    const flood = await Promise.all(Array.from({ length: 40 }, () => settled(c, { rank: 0, token: "" })));
    expect(flood.every((s) => s.error()?.code === grpc.status.PERMISSION_DENIED)).toBe(true);
    expect(failedLines().length - before).toBeLessThanOrEqual(8);
    await new Promise((r) => setTimeout(r, 1_100));
    await settled(c, { rank: 0, token: "" });
    expect(failedLines().at(-1)).toMatch(/"notLoggedBefore":\d+/);
  }, 60_000);

  it("serves at most --max-streams-per-rank streams of a rank: a newer one closes the rank's oldest, others' are untouched", async () => {
    const orch = await orchestrator();
    const c = await compute(orch.address, ["--max-streams-per-rank", "2"]);
    const r0 = await registerTrainer(orch, "trainer-a");
    const r1 = await registerTrainer(orch, "trainer-b");
    const theirs = await settled(c, r1);
    const first = await settled(c, r0);
    const second = await settled(c, r0);
    expect([first.error(), second.error()]).toEqual([null, null]);
    expect(await metric(c, "pangea_compute_batch_streams")).toBe(3);

    const third = await settled(c, r0);
    await waitFor("the oldest stream of rank 0 closed", async () => first.error() !== null, 10_000);
    expect(first.error()).toMatchObject({
      code: grpc.status.ABORTED,
      details: fromPeer("COMPUTE_ERR_STREAM_REPLACED: batch stream from trainer-r0 for rank 0 closed: trainer-r0 opened a newer one for rank 0, and compute serves at most 2 per rank (--max-streams-per-rank)", "trainer-r0"),
    });
    // The newer streams go on: the rank's live ones are the two newest.
    expect([second.error(), third.error(), theirs.error()]).toEqual([null, null, null]);
    expect(third.received()).toBe(1);
    second.call.write(want([1, 2]));
    await waitFor("the second stream's next batches", async () => second.received() === 3, 10_000);
    expect(await metric(c, "pangea_compute_batch_streams")).toBe(3);
  }, 60_000);

  it("a trainer registering again is served past --max-batch-streams filled by its former self's unread streams", async () => {
    const orch = await orchestrator();
    const c = await compute(orch.address, ["--max-batch-streams", "4"]);
    const before = await registerTrainer(orch, "trainer-a");
    // Its former self (hung, its connections open) holds every place compute has.
    const dead = [];
    for (let i = 0; i < 4; i++) dead.push(await settled(c, before));
    expect(dead.map((d) => d.error())).toEqual([null, null, null, null]);
    // A caller without a token cannot take a place either way.
    expect((await settled(c, { rank: 1, token: "" })).error()?.code).toBe(grpc.status.PERMISSION_DENIED);

    // It registers again (no session seen closed: the same rank, a new token). The orchestrator revokes the old
    // token, and compute closes its streams.
    const again = await registerTrainer(orch, "trainer-a");
    expect(again.rank).toBe(before.rank);
    expect(again.token).not.toBe(before.token);
    await waitFor("the former streams closed", async () => dead.every((d) => d.error() !== null), 10_000);
    const revoked = "COMPUTE_ERR_STREAM_TOKEN: batch stream from trainer-r0 for rank 0 closed: its worker token was revoked (the trainer of rank 0 was declared dead or registered again); expected the token of its current registration";
    for (const d of dead) expect(d.error()).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: fromPeer(revoked, "trainer-r0") });
    // The old token opens no more.
    expect((await settled(c, before)).error()?.details).toEqual(fromPeer(revoked.replace("closed:", "refused:"), "trainer-r0"));
    const restarted = await settled(c, again);
    expect([restarted.error(), restarted.received()]).toEqual([null, 1]);
    expect(await metric(c, "pangea_compute_batch_streams")).toBe(1);
  }, 60_000);

  it("streams served before compute registered are held to the key once it arrives", async () => {
    const port = await closedPort();
    const c = await waitingCompute(port);
    const early = await settled(c, { rank: 0, token: "" });
    expect([early.error(), early.received()]).toEqual([null, 1]);
    const orch = await orchestrator(port);
    await c.registered;
    await waitFor("the early stream closed", async () => early.error() !== null, 20_000);
    expect(early.error()).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: fromPeer("COMPUTE_ERR_STREAM_TOKEN: batch stream from trainer-r0 for rank 0 refused: it carries no worker token; expected the token the orchestrator gave rank 0's trainer when it registered", "trainer-r0"),
    });
    // A trainer registered with that orchestrator is served.
    const s = await settled(c, await registerTrainer(orch, "trainer-a"));
    expect([s.error(), s.received()]).toEqual([null, 1]);
  }, 90_000);
});

describe("batch streams while compute holds no key (an orchestrator that gives none, or none reached yet)", () => {
  it("serves a stream with no token, and any number of one rank's streams, as before tokens were checked", async () => {
    const c = await waitingCompute(await closedPort(), ["--max-streams-per-rank", "1"]);
    const streams = [];
    for (let i = 0; i < 3; i++) streams.push(await settled(c, { rank: 0, token: "" }));
    // Another rank's token: nothing to check it with.
    streams.push(await settled(c, { rank: 0, token: "bm9uY2U.bWFj" }));
    await new Promise((r) => setTimeout(r, 500));
    expect(streams.map((s) => [s.error(), s.received()])).toEqual(streams.map(() => [null, 1]));
  }, 60_000);
});
