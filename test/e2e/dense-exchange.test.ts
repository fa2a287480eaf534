import { spawnSync } from "node:child_process";
import { chownSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { PARAMETER_SERVER_SERVICE_NAME, parameterServerClient, startServer, unary, type RunningServer } from "@pangea/rpc";
import { RowLayout } from "@pangea/model";
import { DataType, MessageType, encodeMessage, readDenseFile, writeDenseFile, writeFloats, writeTensor } from "@pangea/schema";
import { ParameterServer } from "../../services/orchestrator/src/server/parameter-server.js";
import { DenseExchange } from "../../services/orchestrator/src/params/dense-exchange.js";
import { startedJob, tempDir } from "../../services/orchestrator/test/fakes/job-fixture.js";
import { ShardedParameterClient } from "../../services/trainer/src/cluster/sharded-parameters.js";
import { DenseExchangeUse } from "../../services/trainer/src/cluster/dense-exchange-use.js";

// The dense exchange between the orchestrator's real ParameterServer and the trainer's
// ParameterClient over gRPC, in one process (the job is a real Job; its exchange
// directory is made under a test directory instead of /dev/shm).

const SCHEMA_DIST = join(fileURLToPath(new URL("../../packages/schema/dist/index.js", import.meta.url)));
const servers: RunningServer[] = [];
const clients: ShardedParameterClient[] = [];
const exchanges: DenseExchange[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.shutdown(100);
  for (const x of exchanges.splice(0)) x.close();
});

async function serve(exchangeOn: boolean, port = 0, half = false) {
  const { job, sessions, batchOf } = startedJob({ steps: 10, denseOptimizer: "adagrad" });

  const exchange = exchangeOn ? DenseExchange.open(tempDir("pangea-xbase-")).exchange : null;
  if (exchange) exchanges.push(exchange);
  const params = new ParameterServer(job, "orchestrator", exchange);
  const server = await startServer("127.0.0.1", port, (s) => params.addToServer(s), [PARAMETER_SERVER_SERVICE_NAME], undefined, { security: null });
  servers.push(server);
  // By address: a client made for an earlier server pushes to its successor on the same port as a trainer of its job.
  tokensAt.set(server.address, (rank) => sessions.get(`trainer-${rank}`)?.workerToken ?? "");
  const model = job.model!;
  const client = (rank: number) => {
    const c = new ShardedParameterClient([server.address], `trainer-${rank}`, rank, model.dense!.params, RowLayout.of(model.spec, [0, 1]), half, null, () => tokenOf(server.address, rank));
    clients.push(c);
    return c;
  };
  /** Gradients that differ per element and per batch, so a mixed-up or torn file would show. */
  const grads = (batch: number) => model.dense!.values.map((v, i) => Float32Array.from({ length: v.length }, (_, k) => Math.sin(batch * 7 + i * 3 + k * 0.01) * 0.1));
  const width = RowLayout.of(model.spec, [0, 1]).uniform!;
  /** A batch's 12 unique ids of slots 0 and 1: the two trainers' overlap, and so do a trainer's from step to step. */
  const ids = (batch: number) => {
    const words = new Uint32Array(2 * IDS_PER_BATCH);
    for (let k = 0; k < IDS_PER_BATCH; k++) [words[2 * k], words[2 * k + 1]] = [1000 + k + 3 * batch, ((k % 2) << 16) >>> 0];
    return words;
  };
  /** Row gradients that differ per element and per batch. */
  const rowGrads = (batch: number) => Float32Array.from({ length: IDS_PER_BATCH * width }, (_, k) => Math.cos(batch * 5 + k * 0.3) * 0.05);
  /** One sync step: both trainers pull (with the dense parameters and their batch's rows) and push batches 2s and 2s + 1. */
  const step = async (c0: ShardedParameterClient, c1: ShardedParameterClient) => {
    const s = job.step;
    const pulled = await Promise.all([c0, c1].map((c, rank) => c.pull(s, ids(2 * s + rank), IDS_PER_BATCH, true, false, null, batchOf(2 * s + rank))));
    await Promise.all([c0, c1].map((c, rank) => c.push(s, 2 * s + rank, 8, 0.5, grads(2 * s + rank), ids(2 * s + rank), IDS_PER_BATCH, rowGrads(2 * s + rank))));
    return pulled;
  };
  /** Every row the steps touched, as a read-only pull reads them. */
  const allRows = () => {
    const every = ids(0).length / 2 + 3 * 2 * 10;
    const words = new Uint32Array(2 * every);
    for (let k = 0; k < every; k++) [words[2 * k], words[2 * k + 1]] = [1000 + (k >> 1), ((k % 2) << 16) >>> 0];
    const out = new Float32Array(every * width);
    model.store.readMany(words, every, true, out, Int32Array.from({ length: every + 1 }, (_, i) => i * width));
    return [out];
  };
  return { job, exchange, params, server, client, step, grads, allRows, width };
}

const IDS_PER_BATCH = 12;

/** The worker tokens of the trainers of the job served last at each address. */
const tokensAt = new Map<string, (rank: number) => string>();
const tokenOf = (address: string, rank: number) => tokensAt.get(address)?.(rank) ?? "";

/** Each tensor's bytes, so equal means equal to the bit. */
const hex = (vs: Float32Array[]) => vs.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex"));

/** Row gradients of a hostile push: its ids, and whether they are said to be in the file and/or sent in the message. */
interface HostileRows {
  ids: Uint32Array;
  inFile: boolean;
  inMessage: Float32Array | null;
}

/** A push whose dense gradients are said to be in `file`, sent as a (hostile) trainer would. */
async function pushNaming(address: string, file: string, withDense: Float32Array[] | null = null, rank = 0, rows: HostileRows | null = null): Promise<unknown> {
  const client = parameterServerClient(address, null);
  try {
    const req = encodeMessage(MessageType.GRADIENT_UPDATE, `trainer-${rank}`, (u) => {
      u.workerRank = rank;
      u.workerToken = tokenOf(address, rank);
      u.step = 0n;
      u.batchIndex = BigInt(rank);
      u.batchSize = 8;
      u.loss = 0.5;
      u.denseFile = file;
      if (withDense) {
        const list = u._initDense(withDense.length);
        withDense.forEach((d, i) => writeFloats(list.get(i), `p${i}`, [d.length], d, false));
      }
      const ids = rows?.ids ?? new Uint32Array(0);
      writeTensor(u._initSparseIds(), "sparse_ids", DataType.UINT64, [ids.length / 2], ids);
      if (rows?.inFile) u.sparseGradsInFile = true;
      if (!rows?.inFile || rows.inMessage) writeFloats(u._initSparseGrads(), "sparse_grads", [rows?.inMessage?.length ?? 0], rows?.inMessage ?? new Float32Array(0), false);
    });
    await unary<Buffer, Buffer>("orchestrator", client.push.bind(client), req);
    return null;
  } catch (err) {
    return err;
  } finally {
    client.close();
  }
}

describe("the dense exchange (trainers on the orchestrator's machine)", () => {
  it("after the first pull offers the directory, the dense parameters and gradients go through files, with the same values and the same updates", async () => {
    const on = await serve(true);
    const off = await serve(false);
    const [a0, a1, b0, b1] = [on.client(0), on.client(1), off.client(0), off.client(1)];
    for (let s = 0; s < 6; s++) {
      const [pa, pb] = [await on.step(a0, a1), await off.step(b0, b1)];
      // Bit-equal parameters pulled either way, and bit-equal parameters after every step's update.
      for (let t = 0; t < 2; t++) {
        expect(hex(pa[t]!.dense!)).toEqual(hex(pb[t]!.dense!));
        expect(hex([pa[t]!.rows])).toEqual(hex([pb[t]!.rows]));
        expect(pa[t]!.rows.some((x) => x !== 0)).toBe(true);
      }
      expect(hex(on.job.model!.dense!.values)).toEqual(hex(off.job.model!.dense!.values));
      expect(hex(on.allRows())).toEqual(hex(off.allRows()));
    }
    expect(on.job.step).toBe(6);
    // First pull of each trainer in the message (it offers the directory), every later one a file; every push's dense
    // gradients a file (the first pushes come after a pull that offered it), its row gradients too once the server
    // answered a pull with a rows file.
    expect(on.params.transfers).toEqual({ weights: { message: 2, file: 10 }, gradients: { message: 0, file: 12 }, rows: { message: 2, file: 10 }, rowGradients: { message: 2, file: 10 }, fileWriteFailures: 0 });
    expect(off.params.transfers).toEqual({ weights: { message: 12, file: 0 }, gradients: { message: 12, file: 0 }, rows: { message: 12, file: 0 }, rowGradients: { message: 12, file: 0 }, fileWriteFailures: 0 });
    // Both trainers read one file per version (w-1 .. w-5); the last four are kept, w-1's pages went to w-5; two gradient
    // files per trainer; two rows files per rank, the older ones' pages recycled.
    const files = readdirSync(on.exchange!.dir).sort();
    expect(files.filter((f) => f.startsWith("w-"))).toEqual(["w-2", "w-3", "w-4", "w-5"]);
    expect(files.filter((f) => f.startsWith("g-")).length).toBe(4);
    expect(files.filter((f) => f.startsWith("r-"))).toEqual(["r-0-3", "r-0-4", "r-1-3", "r-1-4"]);
    expect(statSync(on.exchange!.dir).mode & 0o777).toBe(0o700);
    // A trainer leaving removes its gradient files.
    a0.close();
    a1.close();
    expect(readdirSync(on.exchange!.dir).filter((f) => f.startsWith("g-"))).toEqual([]);
  });

  it("a trainer that does not see the directory (another machine's, here a changed nonce) keeps to the messages", async () => {
    const on = await serve(true);
    writeFileSync(join(on.exchange!.dir, "nonce"), "not the nonce sent");
    const [c0, c1] = [on.client(0), on.client(1)];
    await on.step(c0, c1);
    await on.step(c0, c1);
    expect(on.params.transfers).toEqual({ weights: { message: 4, file: 0 }, gradients: { message: 4, file: 0 }, rows: { message: 4, file: 0 }, rowGradients: { message: 4, file: 0 }, fileWriteFailures: 0 });
  });

  it("after the orchestrator restarts with another directory, a trainer checks it: used if it sees it, else the messages", async () => {
    const first = await serve(true);
    const port = Number(first.server.address.split(":").at(-1));
    const c = first.client(0);
    const noIds = new Uint32Array(0);
    await c.pull(0, noIds, 0, true, true, null);
    await c.pull(0, noIds, 0, true, true, null);
    expect(first.params.transfers.weights).toEqual({ message: 1, file: 1 });
    await servers.shift()!.shutdown(100);
    // Its successor on the same address: the trainer asks for a file (it used one), and gets one of the new directory.
    const second = await serve(true, port);
    second.job.model!.dense!.values[0]!.fill(0.25);
    second.job.model!.dense!.version++;
    expect(hex((await c.pull(0, noIds, 0, true, true, null)).dense!)).toEqual(hex(second.job.model!.dense!.values));
    expect(second.params.transfers.weights).toEqual({ message: 0, file: 1 });
    await servers.pop()!.shutdown(100);
    // A successor whose directory this trainer cannot see: the file is named, the trainer takes the parameters in a message.
    const third = await serve(true, port);
    writeFileSync(join(third.exchange!.dir, "nonce"), "not the nonce sent");
    third.job.model!.dense!.values[0]!.fill(0.5);
    third.job.model!.dense!.version++;
    expect(hex((await c.pull(0, noIds, 0, true, true, null)).dense!)).toEqual(hex(third.job.model!.dense!.values));
    expect(third.params.transfers.weights).toEqual({ message: 1, file: 1 });
    await servers.pop()!.shutdown(100);
    // A push written for a directory (the fourth's) reaching its successor: refused there (no such file), sent again in the message.
    const fourth = await serve(true, port);
    await c.pull(0, noIds, 0, true, true, null);
    await c.pull(0, noIds, 0, true, true, null);
    expect(fourth.params.transfers.weights).toEqual({ message: 1, file: 1 });
    await servers.pop()!.shutdown(100);
    const fifth = await serve(true, port);
    const ack = await c.push(0, 0, 8, 0.5, fifth.grads(0), noIds, 0, new Float32Array(0));
    expect(ack.duplicate).toBe(false);
    expect(fifth.params.transfers.gradients).toEqual({ message: 1, file: 0 });
  });

  it("a directory removed under the orchestrator (systemd's RemoveIPC, a cleaner): parameters and gradients go in the messages, the job goes on", async () => {
    const on = await serve(true);
    const off = await serve(false);
    const [c0, c1, b0, b1] = [on.client(0), on.client(1), off.client(0), off.client(1)];
    for (let s = 0; s < 4; s++) {
      if (s === 2) rmSync(on.exchange!.dir, { recursive: true, force: true });
      await on.step(c0, c1);
      await off.step(b0, b1);
    }
    expect(on.job.step).toBe(4);
    expect(on.params.transfers.weights.file).toBe(2);
    expect(on.params.transfers.fileWriteFailures).toBeGreaterThan(0);
    // After the trainers' gradient files failed to be written, they keep to the messages.
    expect(on.params.transfers.gradients).toEqual({ message: 4, file: 4 });
    // And the model is the one trained without the exchange, to the bit.
    expect(hex(on.job.model!.dense!.values)).toEqual(hex(off.job.model!.dense!.values));
  });

  it("refuses a push naming a file it must not open, one missing or of the wrong size, or gradients in both places: INVALID_ARGUMENT naming it", async () => {
    const on = await serve(true);
    const dir = on.exchange!.dir;
    const lengths = on.job.model!.dense!.values.map((v) => v.length);
    const refused = async (file: string, withDense: Float32Array[] | null = null) => {
      const err = (await pushNaming(on.server.address, file, withDense)) as { code?: number; details?: string } | null;
      expect(err?.code).toBe(status.INVALID_ARGUMENT);
      // Its own code: the trainer sends the gradients again in the message on this one only.
      expect(err!.details).toMatch(/^ORCH_ERR_BAD_DENSE_FILE/);
      return err!.details!;
    };
    expect(await refused("../../etc/passwd")).toMatch(/push from rank 0: dense gradients file "..\/..\/etc\/passwd" is not a name trainers give them/);
    expect(await refused(`g-${"a".repeat(32)}-1`)).toMatch(/dense file .*g-a{32}-1: ENOENT/);
    // A link, even to a file of the right size, is not followed.
    const elsewhere = join(tempDir("pangea-x-elsewhere-"), "grads");
    writeDenseFile(elsewhere, lengths.map((n) => new Float32Array(n)));
    symlinkSync(elsewhere, join(dir, `g-${"b".repeat(32)}-1`));
    expect(await refused(`g-${"b".repeat(32)}-1`)).toMatch(/ELOOP/);
    writeDenseFile(join(dir, `g-${"c".repeat(32)}-1`), [new Float32Array(3)]);
    expect(await refused(`g-${"c".repeat(32)}-1`)).toMatch(/holds 12 bytes, expected \d+/);
    // A FIFO is refused at once, not waited on.
    expect(spawnSync("mkfifo", [join(dir, `g-${"f".repeat(32)}-1`)]).status).toBe(0);
    expect(await refused(`g-${"f".repeat(32)}-1`)).toMatch(/g-f{32}-1: not a regular file/);
    writeDenseFile(join(dir, `g-${"d".repeat(32)}-1`), lengths.map((n) => new Float32Array(n)));
    expect(await refused(`g-${"d".repeat(32)}-1`, lengths.map((n) => new Float32Array(n)))).toMatch(/both in the message and in file/);
    // A trainer's file, named by another rank: refused (its token was bound to rank 0 when rank 0 pushed it).
    const [c0, c1] = [on.client(0), on.client(1)];
    // One of the files the trainers write now, not one planted above (the directory lists in no set order).
    const planted = new Set(readdirSync(dir));
    await on.step(c0, c1);
    const mine = readdirSync(dir).find((f) => f.startsWith("g-") && !planted.has(f))!;
    const owner = on.params.transfers.gradients.file;
    // (Named by both ranks, each for its own batch of step 0: the owner's push is taken as a duplicate the job
    // ignores; the other's is refused for the file.)
    const errs = (await Promise.all([0, 1].map((r) => pushNaming(on.server.address, mine, null, r)))) as { code?: number; details?: string }[];
    const stolen = errs.filter((e) => new RegExp(`dense gradients file ${mine} is rank \\d's`).test(e?.details ?? ""));
    expect(stolen.length).toBe(1);
    expect(stolen[0]!.code).toBe(status.INVALID_ARGUMENT);
    // Only the owner's was taken (as a duplicate of its batch, which the job ignores).
    expect(on.params.transfers.gradients.file).toBe(owner + 1);
    // Nothing else was taken.
    expect(on.params.transfers.gradients).toEqual({ message: 0, file: 3 });
    // An orchestrator without the exchange says so.
    const off = await serve(false);
    const err = (await pushNaming(off.server.address, `g-${"d".repeat(32)}-1`)) as { code?: number; details?: string };
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/no exchange directory \(--dense-exchange off/);
  });

  it("row gradients said to be in the gradient file: refused without a file, in both places, or where the file does not hold them; taken where it does (an undeclared slot's refused, as in a message)", async () => {
    const on = await serve(true);
    const dir = on.exchange!.dir;
    const dense = on.job.model!.dense!.values.map((v) => new Float32Array(v.length).fill(0.001));
    const width = on.width;
    const ids = new Uint32Array([7, 0, 8, 0, 9, 1 << 16]);
    const grads = Float32Array.from({ length: 3 * width }, (_, k) => (k + 1) * 0.01);
    const refused = async (file: string, rows: HostileRows, pattern: RegExp) => {
      const err = (await pushNaming(on.server.address, file, null, 0, rows)) as { code?: number; details?: string } | null;
      expect(err?.code).toBe(status.INVALID_ARGUMENT);
      expect(err!.details).toMatch(/^ORCH_ERR_BAD_DENSE_FILE/);
      expect(err!.details).toMatch(pattern);
    };
    await refused("", { ids, inFile: true, inMessage: null }, /push from rank 0: row gradients said to be in the dense gradients' file, but no file is named/);
    writeDenseFile(join(dir, `g-${"a".repeat(32)}-1`), [...dense, grads]);
    await refused(`g-${"a".repeat(32)}-1`, { ids, inFile: true, inMessage: grads }, /row gradients both in the message and in file g-a{32}-1/);
    // The dense gradients alone: the row gradients the ids need are missing.
    writeDenseFile(join(dir, `g-${"b".repeat(32)}-1`), dense);
    await refused(`g-${"b".repeat(32)}-1`, { ids, inFile: true, inMessage: null }, new RegExp(`holds ${dense.reduce((n, d) => n + d.length, 0) * 4} bytes, expected ${(dense.reduce((n, d) => n + d.length, 0) + grads.length) * 4}`));
    expect(on.params.transfers.rowGradients).toEqual({ message: 0, file: 0 });
    // The same file, right for these ids: taken.
    expect(await pushNaming(on.server.address, `g-${"a".repeat(32)}-1`, null, 0, { ids, inFile: true, inMessage: null })).toBeNull();
    expect(on.params.transfers.rowGradients).toEqual({ message: 0, file: 1 });
    // An id of a slot the job's data does not declare, with a row of the default width: refused, as in a message (it
    // was passed over and the push taken).
    writeDenseFile(join(dir, `g-${"e".repeat(32)}-1`), [...dense, grads.subarray(0, width)]);
    const undeclared = await pushNaming(on.server.address, `g-${"e".repeat(32)}-1`, null, 1, { ids: new Uint32Array([7, 9 << 16]), inFile: true, inMessage: null });
    expect(undeclared?.code).toBe(status.INVALID_ARGUMENT);
    expect(undeclared!.details).toMatch(/^ORCH_ERR_UNKNOWN_SLOT: feature id \d+ has slot 9, which the job's data does not declare$/);
    expect(on.params.transfers.rowGradients).toEqual({ message: 0, file: 1 });
  });

  it("a rows file the trainer cannot read (gone before it read it, another rank's): the exchange is given up, the same rows come in a message", async () => {
    const on = await serve(true);
    const off = await serve(false);
    const [c0, c1, b0, b1] = [on.client(0), on.client(1), off.client(0), off.client(1)];
    await on.step(c0, c1);
    await off.step(b0, b1);
    // A cleaner removes each rows file as soon as it is written.
    const x = on.exchange!;
    const write = x.rowsFile.bind(x);
    x.rowsFile = (rank, rows) => {
      const name = write(rank, rows);
      rmSync(join(x.dir, name));
      return name;
    };
    for (let s = 1; s < 4; s++) {
      const [pa, pb] = [await on.step(c0, c1), await off.step(b0, b1)];
      for (let t = 0; t < 2; t++) expect(hex([pa[t]!.rows])).toEqual(hex([pb[t]!.rows]));
      expect(hex(on.allRows())).toEqual(hex(off.allRows()));
      expect(hex(on.job.model!.dense!.values)).toEqual(hex(off.job.model!.dense!.values));
    }
    // Named once per trainer (step 1), then every tensor in the messages.
    expect(on.params.transfers.rows).toEqual({ message: 2 + 4, file: 2 });
    expect(on.params.transfers.gradients).toEqual({ message: 2 * 3, file: 2 });

    // A rank no trainer holds is refused a training pull (it would count ids and make rows), and gets no rows file;
    // its read-only pulls come in the message.
    const stranger = on.client(7);
    await expect(stranger.pull(on.job.step, new Uint32Array([1000, 0]), 1, true, false, null)).rejects.toThrow(/training pull for rank 7: no trainer with rank 7 is registered/);
    await stranger.pull(on.job.step, new Uint32Array([1000, 0]), 1, true, true, null);
    expect(readdirSync(x.dir).filter((f) => f.startsWith("r-7-"))).toEqual([]);
    expect(on.params.transfers.rows).toEqual({ message: 2 + 4, file: 2 });
    // A gone rank's rows files are swept (at most once a minute); live ranks' stay.
    write(5, Float32Array.of(1, 2));
    write(5, Float32Array.of(1, 2));
    write(5, Float32Array.of(1, 2));
    const kept = write(0, Float32Array.of(3));
    expect(readdirSync(x.dir).filter((f) => f.startsWith("r-5-")).sort()).toEqual(["r-5-1", "r-5-2"]);
    x.sweepRows((rank) => rank !== 5, Date.now() + 61_000);
    expect(readdirSync(x.dir).filter((f) => f.startsWith("r-5-"))).toEqual([]);
    expect(existsSync(join(x.dir, kept))).toBe(true);

    // Read directly: a name of another rank's form is not opened.
    const use = new DenseExchangeUse([], null);
    use.named(x.dir, x.nonce);
    const rows = Float32Array.from({ length: 10 }, (_, k) => k);
    const mine = write(3, rows);
    expect(use.readRows(mine, 3, 10)).toEqual(rows);
    expect(use.readRows(mine, 4, 10)).toBeNull();
    expect(use.active).toBe(false);
    // Lengths from a peer's message are checked against the file before anything is allocated for them.
    expect(() => readDenseFile(join(x.dir, mine), [2 ** 31])).toThrow(/holds 40 bytes, expected 8589934592 \(2147483648 float32 values\)/);
  });

  it("a dense file is read whole or refused: a recycled name is gone, a short file is refused, recycling keeps the pages and takes the new length, and never writes through what was planted in its place", () => {
    const dir = tempDir("pangea-x-files-");
    const a = join(dir, "w-1");
    writeDenseFile(a, [Float32Array.of(1, 2), Float32Array.of(3)]);
    expect(readDenseFile(a, [2, 1]).map((v) => Array.from(v))).toEqual([[1, 2], [3]]);
    expect(() => readDenseFile(a, [2, 2])).toThrow(/w-1: holds 12 bytes, expected 16/);
    const ino = statSync(a).ino;
    const b = join(dir, "w-2");
    writeDenseFile(b, [Float32Array.of(5, 6, 7, 8)], a);
    expect(statSync(b).ino).toBe(ino);
    expect(existsSync(a)).toBe(false);
    expect(() => readDenseFile(a, [2, 1])).toThrow(/w-1: ENOENT/);
    expect(Array.from(readDenseFile(b, [4])[0]!)).toEqual([5, 6, 7, 8]);
    // Recycling into a shorter file truncates it.
    const c = join(dir, "w-3");
    writeDenseFile(c, [Float32Array.of(9)], b);
    expect(statSync(c).size).toBe(4);
    // A new name never overwrites an existing file it was not told to recycle.
    expect(() => writeDenseFile(c, [Float32Array.of(1)])).toThrow(/EEXIST/);
    // What a hostile process of the user put in the recycled file's place is not written through and does not block:
    // a FIFO (opening it to write would wait for a reader forever), a hard link to another file, a symbolic link.
    expect(spawnSync("mkfifo", [join(dir, "fifo")]).status).toBe(0);
    const victim = join(dir, "victim");
    writeFileSync(victim, "untouched");
    linkSync(victim, join(dir, "hard"));
    symlinkSync(victim, join(dir, "soft"));
    for (const planted of ["fifo", "hard", "soft"]) {
      const next = join(dir, `w-${planted}`);
      writeDenseFile(next, [Float32Array.of(7, 8)], join(dir, planted));
      expect(statSync(next).isFile()).toBe(true);
      expect(statSync(next).nlink).toBe(1);
      expect(Array.from(readDenseFile(next, [2])[0]!)).toEqual([7, 8]);
    }
    expect(readFileSync(victim, "utf8")).toBe("untouched");
  });

  it("an exchange directory left by a process killed outright is removed by the next; a live one's, another namespace's and another user's are kept", () => {
    const base = tempDir("pangea-x-sweep-");
    const ns = /\[(\d+)\]/.exec(readlinkSync("/proc/self/ns/pid"))![1]!;
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout;
    const made = (name: string) => {
      mkdirSync(join(base, name), { mode: 0o700 });
      writeFileSync(join(base, name, "w-3"), "x");
      return name;
    };
    made(`pangea-exchange-${ns}-${dead}-aaaaaa`);
    // This process's own pid: a previous process's (pid 1 in a container restarted), gone.
    made(`pangea-exchange-${ns}-${process.pid}-bbbbbb`);
    const live = made(`pangea-exchange-${ns}-${process.ppid}-cccccc`);
    const otherNs = made(`pangea-exchange-1-${dead}-dddddd`);
    const unrelated = made("unrelated");
    const kept = [live, otherNs, unrelated];
    if (process.getuid?.() === 0) {
      const others = made(`pangea-exchange-${ns}-${dead}-eeeeee`);
      chownSync(join(base, others), 65534, 65534);
      kept.push(others);
    }
    const { exchange: x } = DenseExchange.open(base);
    exchanges.push(x!);
    expect(readdirSync(base).sort()).toEqual([x!.dir.split("/").at(-1)!, ...kept].sort());
    expect(x!.dir.split("/").at(-1)).toMatch(new RegExp(`^pangea-exchange-${ns}-${process.pid}-`));
    x!.close();
    exchanges.pop();
    expect(existsSync(x!.dir)).toBe(false);
    // No such base: no exchange (the messages), not an error, and why.
    expect(DenseExchange.open(join(base, "missing"))).toEqual({ exchange: null, why: `${join(base, "missing")}: ENOENT` });
  });

  it("gradient files a gone trainer left (killed, or stopped by a signal) are removed after ten minutes untouched", () => {
    const { exchange: x } = DenseExchange.open(tempDir("pangea-x-gsweep-"));
    exchanges.push(x!);
    const old = join(x!.dir, `g-${"e".repeat(32)}-7`);
    const fresh = join(x!.dir, `g-${"f".repeat(32)}-7`);
    writeFileSync(old, "x");
    writeFileSync(fresh, "x");
    const now = Date.now();
    utimesSync(old, (now - 11 * 60_000) / 1000, (now - 11 * 60_000) / 1000);
    x!.sweepGradients(now + 61_000);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(join(x!.dir, "nonce"))).toBe(true);
  });

  it("a reader racing a writer that recycles files never gets a torn version: it reads one version whole or is refused", async () => {
    const dir = tempDir("pangea-x-race-");
    const n = 1 << 18;
    // [0]: the newest version written (-1 once the writer stops); [1]: set by the reader to stop the writer.
    const latest = new Int32Array(new SharedArrayBuffer(8));
    // The writer recycles continuously in another thread: version v's file holds v in every element. It runs until the
    // reader has seen both outcomes (at least 600 ms), or 20 s: on a loaded machine one outcome can take a while.
    const writer = new Worker(`
      const { workerData } = require("node:worker_threads");
      const { join } = require("node:path");
      import(workerData.schema).then(({ writeDenseFile }) => {
        const latest = new Int32Array(workerData.latest);
        const data = new Float32Array(workerData.n);
        const until = Date.now() + workerData.ms;
        for (let v = 1; Date.now() < until && Atomics.load(latest, 1) === 0; v++) {
          data.fill(v);
          writeDenseFile(join(workerData.dir, "w-" + v), [data], v > 2 ? join(workerData.dir, "w-" + (v - 2)) : null);
          Atomics.store(latest, 0, v);
        }
        Atomics.store(latest, 0, -1);
      });`, { eval: true, workerData: { schema: SCHEMA_DIST, dir, n, latest: latest.buffer, ms: 20_000 } });
    const outcome = { whole: 0, refused: 0 };
    const torn: string[] = [];
    const started = Date.now();
    for (;;) {
      if (outcome.whole > 0 && outcome.refused > 0 && Date.now() - started >= 600) Atomics.store(latest, 1, 1);
      const v = Atomics.load(latest, 0);
      if (v < 0) break;
      if (v === 0) {
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      try {
        const [a] = readDenseFile(join(dir, `w-${v}`), [n]);
        if (a![0] !== v || a![n - 1] !== v || a!.some((x) => x !== v)) torn.push(`w-${v}: ${a![0]} .. ${a![n - 1]}`);
        else outcome.whole++;
      } catch (err) {
        expect((err as Error).message).toMatch(/ENOENT|recycled by its writer while it was read/);
        outcome.refused++;
      }
    }
    await writer.terminate();
    expect(torn).toEqual([]);
    expect(outcome.whole).toBeGreaterThan(0);
    expect(outcome.refused).toBeGreaterThan(0);
  });

  it("with fp16 gradient compression the gradients stay in the message (in half precision); the weights still use the files", async () => {
    const on = await serve(true, 0, true);
    const [c0, c1] = [on.client(0), on.client(1)];
    await on.step(c0, c1);
    await on.step(c0, c1);
    // Rows are pulled as float32 (fp16 rows are asked for in the message): files, once the directory is offered.
    expect(on.params.transfers).toEqual({ weights: { message: 2, file: 2 }, gradients: { message: 4, file: 0 }, rows: { message: 4, file: 0 }, rowGradients: { message: 4, file: 0 }, fileWriteFailures: 0 });
  });
});
