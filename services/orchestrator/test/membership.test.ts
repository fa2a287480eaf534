import { describe, expect, it } from "vitest";
import { Membership } from "../src/job/membership.js";
import { TrainerTokens, tokenIsForRank, ticketIsFor } from "@pangea/rpc";
import { FakeSession, SOURCE, codeOf, recordingLog } from "./fakes/job-fixture.js";

function members(trainers = 2, psShards = 1) {
  let now = 0;
  const { log } = recordingLog();
  const m = new Membership({ trainers, psShards }, log, () => now);
  return { m, advance: (ms: number) => (now += ms) };
}

describe("Membership", () => {
  it("new trainer ids: a burst of 32, then 2 a second; a trainer seen before is not counted against them", async () => {
    const { m, advance } = members();
    for (let i = 0; i < 32; i++) m.addTrainer(`t-${i}`, "JOB_STATE_RUNNING", false, 2);
    expect(await codeOf(() => m.addTrainer("t-32", "JOB_STATE_RUNNING", false, 2))).toBe("ORCH_ERR_RATE_LIMITED");
    const t0 = m.trainer("t-0")!;
    m.declareDead(t0);
    expect(m.addTrainer("t-0", "JOB_STATE_RUNNING", false, 2).rank).toBe(32); // back, with a fresh rank
    advance(500);
    expect(m.addTrainer("t-32", "JOB_STATE_RUNNING", false, 2).rank).toBe(33);
  });

  it("once the job has ended, a trainer is refused even under the id of one live when it ended (Docker restarting it after the job failed)", async () => {
    const { m } = members();
    m.addTrainer("t-0", "JOB_STATE_RUNNING", false, 2);
    m.attach("t-0", new FakeSession(), false);
    const t0 = m.trainer("t-0")!;
    expect(t0.alive).toBe(true);
    t0.session = null; // its connection closed as the job failed, as a process exiting closes it
    await expect(Promise.resolve().then(() => m.addTrainer("t-0", "JOB_STATE_FAILED", true, 2, "ORCH_ERR_CHECKPOINT_IO: EPERM"))).rejects.toThrow("trainer t-0 refused: the job has ended (JOB_STATE_FAILED: ORCH_ERR_CHECKPOINT_IO: EPERM)");
    expect(await codeOf(() => m.addTrainer("t-9", "JOB_STATE_COMPLETED", true, 2))).toBe("ORCH_ERR_JOB_NOT_RUNNING");
  });

  it("a trainer id registering again: 8 at once then 1 a second for the id, and for ids that took part 32 at once then 2 a second together; other ids are not held up", async () => {
    const { m, advance } = members();
    const back = (id: string, attach: boolean) => {
      m.declareDead(m.trainer(id)!);
      const r = m.addTrainer(id, "JOB_STATE_RUNNING", false, 2);
      if (attach) m.attach(id, new FakeSession(), false);
      return r;
    };
    // A bare registration cycled (never a session): held to its own rate, and holding up no one else.
    m.addTrainer("bare", "JOB_STATE_RUNNING", false, 2);
    for (let i = 0; i < 8; i++) back("bare", false);
    await expect(Promise.resolve().then(() => back("bare", false))).rejects.toThrow("trainer bare refused: it registered again more than 8 times in a burst (then 1/s); try again shortly");
    // Ids that took part (each leave tells the shards of a token): their own rates, and all together 32 at once.
    for (let t = 0; t < 5; t++) {
      m.addTrainer(`t-${t}`, "JOB_STATE_RUNNING", false, 2);
      m.attach(`t-${t}`, new FakeSession(), false);
    }
    let taken = 0;
    for (let round = 0; round < 8; round++) for (let t = 0; t < 4; t++, taken++) back(`t-${t}`, true);
    expect(taken).toBe(32);
    await expect(Promise.resolve().then(() => back("t-4", true))).rejects.toThrow("trainer t-4 refused: trainers that took part registered again more than 32 times in a burst (then 2/s); try again shortly");
    // A new id is not held up by either.
    expect(m.addTrainer("new", "JOB_STATE_RUNNING", false, 2).workerToken).toBeTruthy();
    advance(1_000);
    expect(m.addTrainer("t-4", "JOB_STATE_RUNNING", false, 2).workerToken).toBeTruthy();
    expect(m.addTrainer("bare", "JOB_STATE_RUNNING", false, 2).workerToken).toBeTruthy();
  });

  it("takes a backend name and heartbeat phases only in the form a trainer sends, so the status cannot be bloated or spoofed", async () => {
    const { m } = members();
    m.addTrainer("t-0", "JOB_STATE_RUNNING", false, 2);
    expect(m.heartbeat("t-0")).toBe(false); // no session yet: a trainer beats once its session said the job started
    // Bad phases are refused without a session too (they were answered OK).
    expect(await codeOf(() => m.heartbeat("t-0", { evil: 1e308 }))).toBe("ORCH_ERR_BAD_REQUEST");
    expect(await codeOf(() => m.heartbeat("t-0", { fetch: Number.NaN }))).toBe("ORCH_ERR_BAD_REQUEST");
    m.attach("t-0", new FakeSession(), false);
    m.setBackend("t-0", "wasm+blas");
    expect(m.heartbeat("t-0", { fetch: 0.5, pull: 1, compute: 2, push: 0.25, wait: 0 })).toBe(true);
    for (const backend of ["", "x".repeat(65), "wasm blas", "\x1b[31mEVIL", "wasm\u202e"]) {
      expect(await codeOf(() => m.setBackend("t-0", backend)), JSON.stringify(backend)).toBe("ORCH_ERR_BAD_REQUEST");
    }
    expect(await codeOf(() => m.heartbeat("t-0", { fetch: 1, other: 2 }))).toBe("ORCH_ERR_BAD_REQUEST");
    expect(await codeOf(() => m.heartbeat("t-0", { fetch: Number.NaN }))).toBe("ORCH_ERR_BAD_REQUEST");
    expect(await codeOf(() => m.heartbeat("t-0", { push: -1 }))).toBe("ORCH_ERR_BAD_REQUEST");
    // What was refused changed nothing.
    const t = m.trainer("t-0")!;
    expect(t.backend).toBe("wasm+blas");
    expect(t.phaseSeconds).toEqual({ fetch: 0.5, pull: 1, compute: 2, push: 0.25, wait: 0 });
  });

  it("a job sees at most 256 trainer ids", async () => {
    const { m, advance } = members();
    for (let i = 0; i < 256; i++) {
      advance(1000);
      m.addTrainer(`t-${i}`, "JOB_STATE_RUNNING", false, 2);
    }
    advance(1000);
    await expect(Promise.resolve().then(() => m.addTrainer("t-256", "JOB_STATE_RUNNING", false, 2))).rejects.toThrow("trainer t-256 refused: the job has seen 256 trainers");
  });

  it("a registered trainer without a session gets its rank again; one with a session is a conflict", async () => {
    const { m } = members();
    expect(m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2)).toMatchObject({ rank: 0, worldSize: 2 });
    expect(m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2)).toMatchObject({ rank: 0, worldSize: 2 });
    m.attach("t-0", new FakeSession(), false);
    expect(await codeOf(() => m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2))).toBe("ORCH_ERR_WORKER_CONFLICT");
  });

  it("every registration gets a token of its own; a call for a worker must carry its current registration's", async () => {
    const { m } = members(2, 2);
    const first = m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2).workerToken;
    const again = m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2).workerToken;
    const other = m.addTrainer("t-1", "JOB_STATE_WAITING", false, 2).workerToken;
    const compute = m.addCompute("c-1", "127.0.0.1:1", SOURCE, "JOB_STATE_WAITING", false);
    const shard = m.addShard("s-1", 1, "127.0.0.1:2", "JOB_STATE_WAITING");
    const tokens = [first, again, other, compute, shard];
    expect(new Set(tokens).size).toBe(5);
    for (const t of [compute, shard]) expect(t).toMatch(/^[A-Za-z0-9_-]{24}$/);
    // A trainer's is bound to its rank: a nonce and its MAC under the key shards are given, so they can check pushes.
    for (const t of [first, again, other]) expect(t).toMatch(/^[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/);
    expect([0, 1].map((rank) => tokenIsForRank(m.trainerTokens.key, rank, again))).toEqual([true, false]);
    expect(tokenIsForRank(m.trainerTokens.key, 1, other)).toBe(true);
    expect(tokenIsForRank(members(2, 2).m.trainerTokens.key, 1, other)).toBe(false);
    expect(tokenIsForRank(m.trainerTokens.key, 1, other.slice(0, -1))).toBe(false);
    // A batch's ticket is bound to the batch and to the registration it was given to (rank and token), under this
    // orchestrator's ticket key.
    const k = m.trainerTokens.ticketKey;
    const ticket = m.trainerTokens.ticket(1, other, 7);
    expect(ticket).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(ticketIsFor(k, 1, other, 7, ticket)).toBe(true);
    const rank1Again = m.addTrainer("t-1", "JOB_STATE_WAITING", false, 2).workerToken;
    expect([ticketIsFor(k, 0, other, 7, ticket), ticketIsFor(k, 1, other, 8, ticket), ticketIsFor(k, 1, rank1Again, 7, ticket), ticketIsFor(k, 1, "", 7, ticket)]).toEqual([false, false, false, false]);
    expect(ticketIsFor(members(2, 2).m.trainerTokens.ticketKey, 1, other, 7, ticket)).toBe(false);
    expect(ticketIsFor(k, 1, other, 7, ticket.slice(1))).toBe(false);
    // The token key does not make tickets: one made with it is refused.
    const withTokenKey = new TrainerTokens();
    (withTokenKey as { ticketKey: Buffer }).ticketKey = m.trainerTokens.key;
    expect(ticketIsFor(k, 1, other, 7, withTokenKey.ticket(1, other, 7))).toBe(false);
    m.checkToken("t-0", again, "GetWork");
    m.checkToken("c-1", compute, "WorkerSession");
    m.checkToken("s-1", shard, "ReportCheckpoint");
    // The registration before (a stale process), another worker's, none, and one a character short.
    expect(() => m.checkToken("t-0", first, "GetWork")).toThrow("GetWork for trainer t-0 refused: its worker_token is not that of t-0's current registration (a worker that registered again uses the new one)");
    expect(() => m.checkToken("t-0", other, "ReportEval")).toThrow("ReportEval for trainer t-0 refused");
    expect(() => m.checkToken("c-1", "", "WorkerSession")).toThrow("WorkerSession for compute c-1 refused: it carries no worker_token (RegisterWorker's response gives it)");
    expect(await codeOf(() => m.checkToken("s-1", shard.slice(1), "ReportCheckpoint"))).toBe("ORCH_ERR_PERMISSION_DENIED");
    // An id no one registered is the call's own business to refuse (unknown worker), not a token's.
    m.checkToken("t-9", "", "GetWork");
  });

  it("revokes a dead trainer's token and one replaced by registering again, telling the shards and compute whose sessions are open", () => {
    const { m } = members(2, 3);
    m.addShard("s-1", 1, "127.0.0.1:2", "JOB_STATE_WAITING");
    m.addShard("s-2", 2, "127.0.0.1:3", "JOB_STATE_WAITING");
    const s1 = new FakeSession();
    m.attach("s-1", s1, false);
    m.addCompute("c-1", "127.0.0.1:1", SOURCE, "JOB_STATE_WAITING", false);
    const c1 = new FakeSession();
    m.attach("c-1", c1, false);
    const bare = m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2).workerToken;
    // Registered again before its session ever opened: the first token is replaced and revoked where it could be used,
    // at compute (batch streams); the shards are not told, as it held no batch and so no batch ticket.
    const first = m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2).workerToken;
    m.attach("t-0", new FakeSession(), false);
    // Its connection broke; registered again before the session was seen closed: that token is revoked everywhere.
    m.trainer("t-0")!.session = null;
    const second = m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2).workerToken;
    m.attach("t-0", new FakeSession(), false);
    m.declareDead(m.trainer("t-0")!);
    m.declareDead(m.trainer("t-0")!); // once only
    const nonce = (t: string) => t.split(".")[0]!;
    expect(s1.events).toEqual([{ tokensRevoked: { nonces: [nonce(first)] } }, { tokensRevoked: { nonces: [nonce(second)] } }]);
    // Compute closes the batch streams of those tokens, the bare one's too.
    expect(c1.events).toEqual([{ tokensRevoked: { nonces: [nonce(bare)] } }, ...s1.events]);
  });

  it("logs refused calls for a worker for the operator, 10 at once then 1 a second, saying how many it left out", async () => {
    let now = 0;
    const { log, lines } = recordingLog();
    const m = new Membership({ trainers: 2, psShards: 1 }, log, () => now);
    m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2);
    for (let i = 0; i < 25; i++) expect(await codeOf(() => m.checkToken("t-0", "forged", "ReportEval"))).toBe("ORCH_ERR_PERMISSION_DENIED");
    const refusals = () => lines.filter((l) => l.level === "warn" && l.msg.startsWith("refused: "));
    expect(refusals()).toHaveLength(10);
    expect(refusals()[0]!.msg).toBe("refused: ReportEval for trainer t-0 refused: its worker_token is not that of t-0's current registration (a worker that registered again uses the new one)");
    now += 1_000;
    m.attach("t-0", new FakeSession(), false);
    expect(await codeOf(() => m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2))).toBe("ORCH_ERR_WORKER_CONFLICT");
    expect(refusals()).toHaveLength(11);
    expect(refusals()[10]).toMatchObject({ fields: { notLoggedBefore: 15 }, msg: expect.stringContaining("trainer t-0 refused: a trainer of that id is registered and connected") });
  });

  it("compute after the job completed is welcome with nothing to serve (its session gets the end at once); after a failure it is refused", async () => {
    const { m } = members();
    m.addCompute("c-1", "127.0.0.1:1", SOURCE, "JOB_STATE_COMPLETED", true);
    expect(m.compute?.workerId).toBe("c-1");
    expect(m.attach("c-1", new FakeSession(), true)).toBeNull();
    const failed = members().m;
    expect(await codeOf(() => failed.addCompute("c-1", "127.0.0.1:1", SOURCE, "JOB_STATE_FAILED", true))).toBe("ORCH_ERR_JOB_NOT_RUNNING");
  });

  it("a second session under a worker whose session is open is refused, leaving the first in place; once it closes, a new one is taken", async () => {
    const { m } = members();
    m.addTrainer("t-0", "JOB_STATE_WAITING", false, 2);
    m.addCompute("c-1", "127.0.0.1:1", SOURCE, "JOB_STATE_WAITING", false);
    for (const id of ["t-0", "c-1"]) {
      const first = new FakeSession();
      m.attach(id, first, false);
      const rogue = new FakeSession();
      expect(() => m.attach(id, rogue, false)).toThrow(`a session for ${id} is open; a second one is refused`);
      expect(await codeOf(() => m.attach(id, rogue, false))).toBe("ORCH_ERR_WORKER_CONFLICT");
      // The refused session closing is not the worker leaving.
      expect(m.detach(id, rogue)).toBeNull();
      expect(m.detach(id, first)).not.toBeNull();
      expect(m.attach(id, new FakeSession(), false)).not.toBeNull();
    }
  });

  it("compute whose feature_inputs is not the JSON it should be is refused naming the field", () => {
    const { m } = members();
    expect(() => m.addCompute("c-1", "127.0.0.1:1", { ...SOURCE, featureInputs: "{not json" }, "JOB_STATE_WAITING", false)).toThrow("compute c-1 registered with feature_inputs is not JSON");
    m.addCompute("c-1", "127.0.0.1:1", { ...SOURCE, featureInputs: JSON.stringify({ slots: [{ name: "a", slot: 0, type: "bytes" }], dense: [] }) }, "JOB_STATE_WAITING", false);
    expect(m.compute?.workerId).toBe("c-1");
  });

  it("compute coming back mid-job with the job's files written again (the same names and counts, other bytes) is refused; a malformed sample too", async () => {
    const { m } = members();
    const sampled = { ...SOURCE, contentSample: "0123456789abcdef0123456789abcdef" };
    m.addCompute("c-1", "127.0.0.1:1", sampled, "JOB_STATE_WAITING", false);
    m.addCompute("c-1", "127.0.0.1:1", sampled, "JOB_STATE_RUNNING", false);
    const rewritten = { ...sampled, contentSample: "ffffffffffffffffffffffffffffffff" };
    expect(() => m.addCompute("c-1", "127.0.0.1:1", rewritten, "JOB_STATE_RUNNING", false)).toThrow(
      'compute c-1 serves "in-memory test source" with other bytes than the running job started on (the same names and record counts: the files were written again); give it the job\'s files, or start a new job',
    );
    expect(await codeOf(() => m.addCompute("c-1", "127.0.0.1:1", rewritten, "JOB_STATE_RUNNING", false))).toBe("ORCH_ERR_DATA_MISMATCH");
    expect(() => m.addCompute("c-2", "127.0.0.1:1", { ...SOURCE, contentSample: "x".repeat(5000) }, "JOB_STATE_WAITING", false)).toThrow(
      "compute c-2 registered with a content_sample that is not 32 lowercase hex digits (5000 characters); expected those or none",
    );
    expect(() => m.addCompute("c-2", "127.0.0.1:1", { ...SOURCE, contentSample: "0123456789ABCDEF0123456789ABCDEF" }, "JOB_STATE_WAITING", false)).toThrow("not 32 lowercase hex digits (32 characters)");
  });

  it("a compute without a sample (an older version, a FIFO) is not taken for rewritten files, either way", () => {
    const { m } = members();
    m.addCompute("c-1", "127.0.0.1:1", { ...SOURCE, contentSample: "" }, "JOB_STATE_WAITING", false);
    m.addCompute("c-1", "127.0.0.1:1", { ...SOURCE, contentSample: "0123456789abcdef0123456789abcdef" }, "JOB_STATE_RUNNING", false);
    m.addCompute("c-1", "127.0.0.1:1", { ...SOURCE, contentSample: "" }, "JOB_STATE_RUNNING", false);
    expect(m.compute?.workerId).toBe("c-1");
  });

  it("compute's data warnings are a few lines: more, or longer ones, are refused", async () => {
    const { m } = members();
    expect(() => m.addCompute("c-1", "127.0.0.1:1", { ...SOURCE, dataWarnings: new Array(9).fill("w") }, "JOB_STATE_WAITING", false)).toThrow("compute c-1 registered with 9 data warnings of up to 1 characters; at most 8 of 2048");
    expect(await codeOf(() => m.addCompute("c-1", "127.0.0.1:1", { ...SOURCE, dataWarnings: ["x".repeat(2049)] }, "JOB_STATE_WAITING", false))).toBe("ORCH_ERR_BAD_REGISTRATION");
    m.addCompute("c-1", "127.0.0.1:1", { ...SOURCE, dataWarnings: ["x".repeat(2048)] }, "JOB_STATE_WAITING", false);
    expect(m.compute?.workerId).toBe("c-1");
  });

  it("shards: an index outside 1..n-1, a taken index, or any shard after the start is refused", async () => {
    const { m } = members(2, 3);
    expect(await codeOf(() => m.addShard("s-0", 0, "h:1", "JOB_STATE_WAITING"))).toBe("ORCH_ERR_BAD_REGISTRATION");
    expect(await codeOf(() => m.addShard("s-3", 3, "h:1", "JOB_STATE_WAITING"))).toBe("ORCH_ERR_BAD_REGISTRATION");
    m.addShard("s-2", 2, "h:2", "JOB_STATE_WAITING");
    m.addShard("s-1", 1, "h:1", "JOB_STATE_WAITING");
    expect(await codeOf(() => m.addShard("s-x", 1, "h:9", "JOB_STATE_WAITING"))).toBe("ORCH_ERR_CLUSTER_FULL");
    expect(await codeOf(() => m.addShard("s-1", 1, "h:1", "JOB_STATE_RUNNING"))).toBe("ORCH_ERR_CLUSTER_FULL");
    expect(m.shardAddresses()).toEqual(["h:1", "h:2"]);
    // Its id again while it is connected: refused (it would take the shard's place and the push key); once its session
    // is seen closed, a restarted process under the id is taken.
    const session = new FakeSession();
    m.attach("s-1", session, false);
    expect(await codeOf(() => m.addShard("s-1", 1, "h:7", "JOB_STATE_WAITING"))).toBe("ORCH_ERR_WORKER_CONFLICT");
    m.detach("s-1", session);
    m.addShard("s-1", 1, "h:7", "JOB_STATE_WAITING");
    expect(m.shardAddresses()).toEqual(["h:7", "h:2"]);
  });

  it("is ready once compute is registered and the expected trainers and every shard are connected", () => {
    const { m } = members(1, 2);
    m.addTrainer("t-0", "JOB_STATE_WAITING", false, 1);
    m.attach("t-0", new FakeSession(), false);
    m.addCompute("c", "h:0", SOURCE, "JOB_STATE_WAITING", false);
    expect(m.ready()).toBe(false);
    m.addShard("s-1", 1, "h:1", "JOB_STATE_WAITING");
    const shard = new FakeSession();
    m.attach("s-1", shard, false);
    expect(m.ready()).toBe(true);
    expect(m.detach("s-1", new FakeSession())).toBeNull(); // an older session closing changes nothing
    expect(m.detach("s-1", shard)).toEqual({ kind: "shard", shard: expect.objectContaining({ index: 1, session: null }) });
    expect(m.ready()).toBe(false);
  });

  it("a trainer's stepsDone counts the steps it computed a batch of, once per step however many of its batches", () => {
    const { m } = members(1);
    const { rank } = m.addTrainer("t-0", "JOB_STATE_RUNNING", false, 4);
    const t = m.trainerOfRank(rank)!;
    for (const step of [0, 0, 0, 2, 2, 5]) m.credit(t, step, undefined);
    const line = () => m.workerStatuses(false).find((w) => w.workerId === "t-0")!;
    expect([line().stepsDone, line().batchesDone]).toEqual([3, 6]);
  });

  it("closeAll sends the last event down every open session and ends it", () => {
    const { m } = members(1);
    m.addTrainer("t-0", "JOB_STATE_WAITING", false, 1);
    const s = new FakeSession();
    m.attach("t-0", s, false);
    m.addCompute("c", "h:0", SOURCE, "JOB_STATE_WAITING", false);
    const c = new FakeSession();
    m.attach("c", c, false);
    m.closeAll({ jobFinished: { state: "JOB_STATE_FAILED", error: "E: why" } });
    for (const x of [s, c]) {
      expect(x.events).toEqual([{ jobFinished: { state: "JOB_STATE_FAILED", error: "E: why" } }]);
      expect(x.ended).toBe(true);
    }
    expect(m.workerStatuses(false).map((w) => [w.workerId, w.connected, w.alive])).toEqual([["t-0", false, true], ["c", false, false]]);
  });
});
