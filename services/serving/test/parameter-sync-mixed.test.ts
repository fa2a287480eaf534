import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { PARAMETER_SYNC_SERVICE_NAME, startServer, type RunningServer } from "@pangea/rpc";
import { denseParams, initDenseParams, validateSpec } from "@pangea/model";
import { ModelManager } from "../src/model/model-manager.js";
import { addParameterSync } from "../src/api/parameter-sync.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { writeModel } from "./support/versions.js";
import { encodeSyncUpdate, pushSync } from "./support/sync.js";

/**
 * Parameter sync of slots with rows of different widths (a wide-deep model
 * with dims 2 and 3: rows of 3 and 4): rows come side by side in id order,
 * each as wide as its slot's, and land in their slots' tables; a total that
 * does not fit the ids, or an id of a slot the model lacks, is refused whole.
 */
const log = createLogger("serving-test", "silent");
const base = mkdtempSync(join(tmpdir(), "pangea-sync-mixed-"));
const models = new ModelManager("ctr", base, 1, log);
const spec = validateSpec({ numDense: 2, numSlots: 2, embeddingDim: 2, slotDims: [2, 3], architecture: { name: "wide-deep", deepMlp: [3] } });
let server: RunningServer;
const words = (slot: number, n: number) => [n, (slot << 16) >>> 0];

beforeAll(async () => {
  writeModel(base, 1, {
    spec,
    slotIds: [1, 2],
    dense: Float32Array.from(initDenseParams(spec, 1).flatMap((v) => Array.from(v))),
    tables: [
      { slot: 1, ids: Uint32Array.from(words(1, 1)), rows: new Float32Array(3) },
      { slot: 2, ids: Uint32Array.from(words(2, 1)), rows: new Float32Array(4) },
    ],
  });
  models.scan();
  server = await startServer("127.0.0.1", 0, (s) => addParameterSync(s, models, new MicroBatcher(0, 64), log), [PARAMETER_SYNC_SERVICE_NAME]);
});
afterAll(() => server.shutdown(100));

function push(seq: number, ids: [number, number][], rows: Float32Array, shape = [rows.length]) {
  return pushSync(server.address, encodeSyncUpdate({ seq, ids: Uint32Array.from(ids.flatMap(([s, n]) => words(s, n))), rows, rowsShape: shape }));
}

const rowOf = (slot: number, n: number) => {
  const t = models.current()!.tables.get(slot)!;
  const [lo, hi] = words(slot, n);
  const r = t.find(lo, hi);
  return r < 0 ? null : Array.from(t.rows.subarray(r * t.dim, (r + 1) * t.dim));
};

describe("parameter sync of slots of different widths", () => {
  it("puts each row, side by side in id order, in its slot's table at its width", async () => {
    // slot 2 id 5 (4 values), slot 1 id 1 (3), slot 2 id 1 (4)
    const rows = Float32Array.from([21, 22, 23, 24, 11, 12, 13, 31, 32, 33, 34]);
    const ack = await push(1, [[2, 5], [1, 1], [2, 1]], rows);
    expect(Number(ack.rowsApplied)).toBe(3);
    expect(rowOf(2, 5)).toEqual([21, 22, 23, 24]);
    expect(rowOf(1, 1)).toEqual([11, 12, 13]);
    expect(rowOf(2, 1)).toEqual([31, 32, 33, 34]);
    expect(denseParams(models.current()!.spec).length).toBeGreaterThan(0);
  });

  it("takes [count, width] from a sender whose rows share one width (a shard holding only such slots)", async () => {
    const ack = await push(2, [[2, 7], [2, 8]], Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [2, 4]);
    expect(Number(ack.rowsApplied)).toBe(2);
    expect(rowOf(2, 8)).toEqual([5, 6, 7, 8]);
  });

  it.each([
    ["a total that does not fit the ids' widths", [[1, 2], [2, 2]] as [number, number][], new Float32Array(8), /rows \[8\] do not match 2 ids \(7 values at their slots' row widths \(mixed\)\)/],
    ["an id of a slot the model lacks", [[3, 1]] as [number, number][], new Float32Array(3), /ids: id 0 \(0x0003000000000001\) is of slot 3, which the served model does not have \(its slots: 1, 2\)/],
  ])("refuses %s whole (INVALID_ARGUMENT), applying nothing", async (_what, ids, rows, message) => {
    await expect(push(10, ids, rows)).rejects.toMatchObject({ code: 3, details: expect.stringMatching(message) });
    expect(rowOf(1, 2)).toBeNull();
  });
});
