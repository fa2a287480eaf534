import { afterEach, describe, expect, it } from "vitest";
import { MAX_REVOKED, PARAMETER_SERVER_SERVICE_NAME, TrainerTokens, nonceOf, startServer, type RunningServer } from "@pangea/rpc";
import { RowLayout, modelSpecFromWire } from "@pangea/model";
import { ParameterServer } from "../../services/orchestrator/src/server/parameter-server.js";
import type { JobSpec__Output } from "@pangea/schema";
import { defaultSlotConfig } from "../../services/orchestrator/src/job/job-model.js";
import { ShardHost } from "../../services/orchestrator/src/shard/shard-host.js";
import { gradients, recordingLog, startedJob, tempDir } from "../../services/orchestrator/test/fakes/job-fixture.js";
import { BatchTickets } from "../../services/trainer/src/cluster/batch-tickets.js";
import { ParameterClient } from "../../services/trainer/src/cluster/parameters.js";
import { ShardedParameterClient } from "../../services/trainer/src/cluster/sharded-parameters.js";
import { PulledAhead } from "../../services/trainer/src/cluster/pulled-ahead.js";

// The trainer's parameter client against the orchestrator's real ParameterServer and Job over gRPC (in one process:
// the job is driven by pushing gradients to it directly): pulls sent ahead, and the token a push carries.

let server: RunningServer | null = null;
const clients: ShardedParameterClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.shutdown(100);
  server = null;
});

async function serve(steps = 3, over: Parameters<typeof startedJob>[0] = {}) {
  const { job, sessions, batchOf } = startedJob({ steps, ...over });
  server = await startServer("127.0.0.1", 0, (s) => new ParameterServer(job, "orchestrator").addToServer(s), [PARAMETER_SERVER_SERVICE_NAME], undefined, { security: null });
  const model = job.model!;
  /** The client of rank's trainer; `token`: another than its registration's. */
  const client = (rank: number, token?: string) => {
    const c = new ShardedParameterClient([server!.address], `trainer-${rank}`, rank, model.dense!.params, RowLayout.of(model.spec, [0, 1]), false, null, () => token ?? sessions.get(`trainer-${rank}`)?.workerToken ?? "");
    clients.push(c);
    return c;
  };
  /** Ids of slot 1 (an id's high word holds its slot in its top 16 bits), as of batch 2 (compute's seal on it). */
  const ids = (...lo: number[]) => ({ batch: batchOf(2), unique: Uint32Array.from(lo.flatMap((x) => [x, (1 << 16) >>> 0])), uniqueCount: lo.length, offsets: null });
  const rows = () => model.store.size();
  const finishStep = async () => {
    const s = job.step;
    for (const rank of [0, 1]) {
      const g = gradients(job, rank, 2 * s + rank);
      for (const v of g.dense) v.fill(0.1);
      await job.push(g);
    }
  };
  return { job, sessions, client, ids, rows, finishStep, batchOf };
}

describe("pulls sent ahead, trainer to orchestrator over gRPC", () => {
  it("held until the step is planned, then served with the new step's parameters and marked served ahead", async () => {
    const { job, client, ids, rows, finishStep } = await serve();
    // Waited for until the orchestrator holds it (a fixed sleep was too short on a loaded machine: the pull then came after the step).
    const held = new Promise<void>((resolve) => {
      const hold = job.holdPull.bind(job);
      job.holdPull = (...args: Parameters<typeof hold>) => {
        const p = hold(...args);
        resolve();
        return p;
      };
    });
    const ahead = new PulledAhead(client(0), 1, { batches: [2], workingOn: [0] }, Promise.resolve(ids(11, 12)));
    await held;
    // Held: no row read or created yet.
    expect(rows()).toBe(0);
    const dense = job.model!.dense!.values.map((v) => v.slice());
    await finishStep();
    const served = await ahead.answer();
    expect(served).not.toBeNull();
    expect(served!.step).toBe(1);
    expect(served!.rows.length).toBe(2 * 2);
    // The dense parameters after step 0's update, not before.
    expect(served!.dense!.map((v) => Array.from(v))).toEqual(job.model!.dense!.values.map((v) => Array.from(v)));
    expect(served!.dense!.map((v) => Array.from(v))).not.toEqual(dense.map((v) => Array.from(v)));
    expect(ahead.pulledFor(ids(11, 12).unique, 2)).toBe(true);
    expect(ahead.pulledFor(ids(11, 13).unique, 2)).toBe(false);
    expect(rows()).toBe(2);
    // Counted as the overlap it is for (pangea_pulls_ahead_total).
    expect(job.pullsAhead()).toEqual({ servedAfterHold: 1, servedOnArrival: 0, withdrawn: 0 });
  });

  it("sent after its step was planned, it is served on arrival, and counted so (the trainer waited for it)", async () => {
    const { job, client, ids, finishStep } = await serve();
    await finishStep();
    const ahead = new PulledAhead(client(0), 1, { batches: [2], workingOn: [0] }, Promise.resolve(ids(15)));
    // Sent (its batch is read), then answered.
    await new Promise((r) => setTimeout(r, 20));
    const served = await ahead.answer();
    expect(served?.step).toBe(1);
    expect(job.pullsAhead()).toEqual({ servedAfterHold: 0, servedOnArrival: 1, withdrawn: 0 });
  });

  it("withdrawn when the batches are not the trainer's: no rows, and the trainer is told nothing was served", async () => {
    const { job, client, ids, rows, finishStep, batchOf } = await serve();
    const ahead = new PulledAhead(client(0), 1, { batches: [3], workingOn: [0] }, Promise.resolve({ ...ids(21), batch: batchOf(3) }));
    await new Promise((r) => setTimeout(r, 50));
    await finishStep();
    expect(await ahead.answer()).toBeNull();
    expect(rows()).toBe(0);
    expect(job.pullsAhead()).toEqual({ servedAfterHold: 0, servedOnArrival: 0, withdrawn: 1 });
  });

  it("abandoned while held, it is cancelled: the step comes and nothing is read or created for it", async () => {
    const { job, client, ids, rows, finishStep } = await serve();
    // Waited for by events, not sleeps: on a loaded machine a 50 ms sleep could end before the
    // orchestrator had read the cancellation, and the step then served the pull it still held.
    const cancelled = new Promise<void>((resolve) => {
      const hold = job.holdPull.bind(job);
      job.holdPull = (...args: Parameters<typeof hold>) => {
        const p = hold(...args);
        const signal = args[4]!;
        signal.addEventListener("abort", () => resolve());
        ahead.abandon();
        return p;
      };
    });
    const ahead = new PulledAhead(client(0), 1, { batches: [2], workingOn: [0] }, Promise.resolve(ids(31, 32)));
    await cancelled;
    await finishStep();
    await new Promise((r) => setTimeout(r, 50));
    expect(await ahead.answer()).toBeNull();
    expect(rows()).toBe(0);
    expect(job.pullsAhead()).toEqual({ servedAfterHold: 0, servedOnArrival: 0, withdrawn: 1 });
  });

  it("asked for before its batch was read, it is never sent (the trainer goes to GetWork instead)", async () => {
    const { client, ids, rows, finishStep } = await serve();
    let read!: (p: ReturnType<typeof ids>) => void;
    const ahead = new PulledAhead(client(0), 1, { batches: [2], workingOn: [0] }, new Promise((r) => (read = r)));
    expect(await ahead.answer()).toBeNull();
    read(ids(41));
    await finishStep();
    await new Promise((r) => setTimeout(r, 100));
    expect(rows()).toBe(0);
  });

  it("an async job refuses a pull sent ahead with INVALID_ARGUMENT naming why (not an unknown error)", async () => {
    const { client, ids } = await serve(3, { mode: "async" });
    const err = await client(0).pullAhead(1, { batches: [2], workingOn: [0] }, ids(61).unique, 1, null, ids(61).batch).then(() => null, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/pull sent ahead for step 1: orchestrator at .*: INVALID_ARGUMENT: ORCH_ERR_BAD_REQUEST: a pull sent ahead is for sync and hybrid jobs; this job is async$/);
  });
});

// A push names its rank; without TLS (or with the shared trainer certificate) anyone could name another trainer's.
describe("a push for a rank carries the token of the trainer holding it", () => {
  it("refused without it or with another trainer's (PERMISSION_DENIED, nothing applied); taken with it", async () => {
    const { job, sessions, client } = await serve(2);
    const model = job.model!;
    const grads = model.dense!.values.map((v) => new Float32Array(v.length).fill(1000));
    const push = (c: ShardedParameterClient) => c.push(0, 0, 8, 0.5, grads, new Uint32Array(0), 0, new Float32Array(0)).then(() => "taken", (e: Error) => e.message);
    const before = model.dense!.values.map((v) => v.slice());
    for (const token of ["", sessions.get("trainer-1")!.workerToken]) {
      expect(await push(client(0, token))).toMatch(/PERMISSION_DENIED: ORCH_ERR_PERMISSION_DENIED: Push for rank 0 for trainer trainer-0 refused: (it carries no worker_token|its worker_token is not that of trainer-0's current registration)/);
    }
    expect(model.dense!.values).toEqual(before);
    expect(job.status().batchesApplied).toBe(0);
    expect(await push(client(0))).toBe("taken");
  });
});

// The other shards see no registrations: their key (a shard's registration gives it) tells whether a token was issued for
// the rank, and whether the batch was given to that rank (the ticket GetWork gave with it).
describe("a push to another parameter-server shard carries a token issued for its rank and its batch's ticket", () => {
  it("refused without them, with another rank's or batch's, or under another orchestrator's key (PERMISSION_DENIED, logged); taken with its own", async () => {
    const { log, lines } = recordingLog();
    const host = new ShardHost({ index: 1, defaults: defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2), perSlot: new Map(), seed: 1, maxEmbeddingBytes: 0, maxGradientAbs: 1e6, checkpointDir: tempDir("pangea-shard-token-") }, log);
    const model = { numDense: 2, slotIds: [0, 1], embeddingDim: 2, bottomMlp: [2], topMlp: [2], architectureJson: "", slotDims: [] };
    host.start({ jobId: "j", model, steps: 3, worldSize: 2, batchesPerStep: 2, mode: "sync", psShards: ["h:0", "h:1"], resumedFromStep: 0, heartbeatTimeoutMs: 5000, servingSync: [] } as unknown as JobSpec__Output);
    const tokens = new TrainerTokens();
    host.pushKey = tokens.key;
    host.ticketKey = tokens.ticketKey;
    server = await startServer("127.0.0.1", 0, (s) => new ParameterServer(host, "ps-shard-1").addToServer(s), [PARAMETER_SERVER_SERVICE_NAME], undefined, { security: null });
    const layout = RowLayout.of(modelSpecFromWire(model as never), model.slotIds);
    /** Rank 0 pushes batch `batch` (of step batch/2) with `token` and `ticket` (noted as GetWork's would be). */
    const push = (token: string, ticket: string, batch = 0) => {
      const tickets = new BatchTickets();
      tickets.note([batch], ticket ? [ticket] : []);
      return new ParameterClient(server!.address, "trainer-0", 0, [], layout, false, false, null, () => token, tickets).push(Math.floor(batch / 2), batch, 8, 0.5, [], new Uint32Array(0), 0, new Float32Array(0)).then(() => "taken", (e: Error) => e.message);
    };
    // Rank 0's registration, and a later one of the same rank (a trainer that registered again: shards cannot revoke the first).
    const [mine, again, rank1] = [tokens.issue(0), tokens.issue(0), tokens.issue(1)];
    const other = new TrainerTokens();
    const refusals: [string, string, string][] = [
      ["", tokens.ticket(0, mine, 0), "it carries no worker_token"],
      [rank1, tokens.ticket(1, rank1, 0), "its worker_token was not issued for rank 0"],
      [other.issue(0), other.ticket(0, mine, 0), "its worker_token was not issued for rank 0"],
      ["garbage", tokens.ticket(0, mine, 0), "its worker_token was not issued for rank 0"],
      // A good token for rank 0 with a batch not given to its registration: none, rank 1's, another batch's, another
      // registration's of rank 0 (a replaced token cannot push the batches given after it), another orchestrator's.
      [mine, "", "it carries no batch_ticket for batch 0"],
      [mine, tokens.ticket(1, rank1, 0), "its batch_ticket is not for batch 0 given to rank 0 with this worker_token"],
      [mine, tokens.ticket(0, mine, 1), "its batch_ticket is not for batch 0 given to rank 0 with this worker_token"],
      [mine, tokens.ticket(0, again, 0), "its batch_ticket is not for batch 0 given to rank 0 with this worker_token"],
      [mine, other.ticket(0, mine, 0), "its batch_ticket is not for batch 0 given to rank 0 with this worker_token"],
    ];
    for (const [token, ticket, why] of refusals) {
      expect(await push(token, ticket)).toMatch(`PERMISSION_DENIED: ORCH_ERR_PERMISSION_DENIED: Push for rank 0 refused by parameter-server shard 1: ${why}`);
    }
    // Logged five at once, then one a second: a flood of refusals does not flood the log.
    const logged = lines.filter((l) => l.level === "warn" && l.msg.includes("refused by parameter-server shard 1")).length;
    expect(logged).toBeGreaterThanOrEqual(5);
    expect(logged).toBeLessThan(refusals.length);
    expect(host.step).toBe(0);
    // rank 0 registered again: the orchestrator revokes its first token (WorkerEvent.tokens_revoked), which cannot push
    // even a batch it was given; the new one pushes.
    host.revoke([nonceOf(mine)]);
    // FAILED_PRECONDITION, as shard 0 answers a trainer declared dead: an honest one, stalled then woken, registers again.
    expect(await push(mine, tokens.ticket(0, mine, 0))).toMatch("FAILED_PRECONDITION: ORCH_ERR_NOT_A_MEMBER: Push for rank 0 refused by parameter-server shard 1: its worker_token was revoked (the trainer of rank 0 was declared dead or registered again); register again");
    expect(await push(again, tokens.ticket(0, again, 0))).toBe("taken");
    expect(await push(again, tokens.ticket(0, again, 1), 1)).toBe("taken");
    expect(host.step).toBe(1);
    // The newest MAX_REVOKED revoked tokens are kept.
    const more = Array.from({ length: MAX_REVOKED }, () => tokens.issue(0));
    host.revoke(more.map(nonceOf));
    const check = (token: string) => () => host.checkPush({ rank: 0, token, batch: 2, ticket: tokens.ticket(0, token, 2) }, "Push");
    expect(check(more[0]!)).toThrow("its worker_token was revoked");
    expect(check(mine)).not.toThrow();
    // An orchestrator that gives no tickets (it sent no ticket key), then one that sent no key at all (both predate the
    // checks): pushes are taken as before.
    host.ticketKey = null;
    expect(await push(mine, "", 2)).toBe("taken");
    host.pushKey = null;
    expect(await push("", "", 3)).toBe("taken");
  });
});
