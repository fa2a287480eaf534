import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { PARAMETER_SYNC_SERVICE_NAME, startServer, type RunningServer } from "@pangea/rpc";
import { denseParams, validateSpec } from "@pangea/model";
import { ModelManager } from "../src/model/model-manager.js";
import { ForwardPool } from "../src/batching/forward-pool.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { addParameterSync } from "../src/api/parameter-sync.js";
import type { Examples } from "../src/model/servable.js";
import { writeModel } from "./support/versions.js";
import { encodeSyncUpdate, pushSync } from "./support/sync.js";

/**
 * Forward threads (--forward-threads) against the event loop's forward pass
 * on the same version: the same bits, before and after a parameter sync
 * update (rows replaced and added so a table grows, an id removed, new
 * dense weights), on every thread.
 */
const log = createLogger("serving-test", "silent");
const base = mkdtempSync(join(tmpdir(), "pangea-pool-"));
const models = new ModelManager("ctr", base, 1, log);
// Two slots of dim 3, a bottom and a top MLP.
const spec = validateSpec({ numDense: 3, numSlots: 2, embeddingDim: 3, architecture: { name: "dlrm", bottomMlp: [4, 3], topMlp: [5] } });
const params = denseParams(spec);
const words = (slot: number, n: number) => [n, (slot << 16) >>> 0];
const wave = (seed: number, n: number) => Float32Array.from({ length: n }, (_, k) => Math.sin(seed + 1.7 * k) * 0.8);
const denseSize = params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
const pool = new ForwardPool(2, log);
const batcher = new MicroBatcher(0, 4096, { pool });
let server: RunningServer;

beforeAll(async () => {
  writeModel(base, 1, {
    spec,
    slotIds: [1, 2],
    dense: wave(1, denseSize),
    tables: [
      { slot: 1, ids: Uint32Array.from([1, 2, 3].flatMap((n) => words(1, n))), rows: wave(2, 9) },
      { slot: 2, ids: Uint32Array.from([1, 2].flatMap((n) => words(2, n))), rows: wave(3, 6) },
    ],
  });
  models.scan();
  server = await startServer("127.0.0.1", 0, (s) => addParameterSync(s, models, batcher, log), [PARAMETER_SYNC_SERVICE_NAME]);
});
afterAll(async () => {
  await server.shutdown(100);
  await pool.close();
});

/** Requests of 5 examples, ids 0 (missing) to 9 in both slots (most of 4-9 unknown until synced). */
const requests = Array.from({ length: 6 }, (_, r): Examples => ({
  count: 5,
  dense: wave(10 + r, 15),
  idWords: Uint32Array.from(Array.from({ length: 5 }, (_, e) => [...words(1, (r + e) % 10), ...words(2, (r * 3 + e) % 10)]).flat()),
}));

/** The requests at once over the threads, and each in the event loop; both must be the same bits. */
async function bothWays(): Promise<Float32Array[]> {
  const s = models.current()!;
  const before = pool.passesPerThread;
  // Copies: a pass takes its input arrays (moved to the thread).
  const threaded = await Promise.all(requests.map((x) => batcher.predict(s, { count: x.count, dense: x.dense.slice(), idWords: x.idWords.slice() })));
  expect(pool.passesPerThread.every((n, i) => n > before[i]!), `passes per thread ${before} -> ${pool.passesPerThread}`).toBe(true);
  requests.forEach((x, r) => expect(Array.from(threaded[r]!), `request ${r}`).toEqual(Array.from(s.predict(x))));
  return threaded;
}

describe("forward threads", () => {
  it("predict what the event loop predicts, bit for bit, and updates reach every thread", async () => {
    const before = await bothWays();
    const ids = [...words(1, 1), ...words(1, 4), ...words(1, 5), ...words(1, 6), ...words(2, 7), ...words(2, 8)];
    const ack = await pushSync(server.address, encodeSyncUpdate({
      seq: 1,
      ids: Uint32Array.from(ids),
      rows: wave(20, 6 * 3),
      tombstones: Uint32Array.from(words(1, 2)),
      dense: params.map((p, i) => ({ name: p.name, shape: [...p.shape], data: wave(30 + i, p.shape.reduce((a, b) => a * b, 1)) })),
    }));
    expect(ack).toMatchObject({ rowsApplied: 6n, rowsRemoved: 1n, denseApplied: true });
    const after = await bothWays();
    requests.forEach((_, r) => expect(Array.from(after[r]!), `request ${r}`).not.toEqual(Array.from(before[r]!)));
    // Rows only (no dense weights): the threads get the grown tables alone.
    await pushSync(server.address, encodeSyncUpdate({ seq: 2, ids: Uint32Array.from(words(2, 9)), rows: wave(40, 3) }));
    const rowsOnly = await bothWays();
    expect(requests.some((_, r) => Array.from(rowsOnly[r]!).join() !== Array.from(after[r]!).join())).toBe(true);
    // A version the threads dropped (unloaded while a request for it still waited) is sent again whole.
    pool.retain([]);
    expect(await bothWays()).toEqual(rowsOnly);
  });

  it("replace a thread that ends, which gets the version afresh", async () => {
    const s = models.current()!;
    const ended = pool["threads"][0]!.worker;
    await ended.terminate();
    await new Promise((r) => setImmediate(r));
    expect(pool["threads"][0]!.worker).not.toBe(ended);
    const [x] = requests;
    expect(Array.from(await batcher.predict(s, { count: x!.count, dense: x!.dense.slice(), idWords: x!.idWords.slice() }))).toEqual(Array.from(s.predict(x!)));
    await bothWays();
  });

  it("a thread whose script cannot load is not started again (no loop); the passes then run in the event loop", async () => {
    const broken = join(base, "broken-worker.mjs");
    writeFileSync(broken, "throw new Error('broken on purpose');\n");
    const dead = new ForwardPool(1, log, pathToFileURL(broken));
    try {
      const spawned: unknown[] = [];
      const spawn = dead["spawn"].bind(dead);
      dead["spawn"] = () => {
        spawned.push(1);
        return spawn();
      };
      const until = Date.now() + 5_000;
      while (dead.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(dead.size).toBe(0);
      await new Promise((r) => setTimeout(r, 200));
      expect(spawned).toEqual([]);
      const s = models.current()!;
      const [x] = requests;
      const inline = new MicroBatcher(0, 4096, { pool: dead });
      expect(Array.from(await inline.predict(s, { count: x!.count, dense: x!.dense.slice(), idWords: x!.idWords.slice() }))).toEqual(Array.from(s.predict(x!)));
    } finally {
      await dead.close();
    }
  });
});
