import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { createLogger } from "@pangea/kit";
import { PARAMETER_SYNC_SERVICE_NAME, startServer, type RunningServer } from "@pangea/rpc";
import { denseParams } from "@pangea/model";
import { ModelManager } from "../src/model/model-manager.js";
import { addParameterSync } from "../src/api/parameter-sync.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { SPEC, idWords, writeVersion } from "./support/versions.js";
import { encodeSyncUpdate, pushSync } from "./support/sync.js";

/**
 * ParameterSync over gRPC (a real server on port 0, a model version on
 * disk): a non-finite or mis-shaped update is refused with INVALID_ARGUMENT,
 * counted, and none of it is applied; a sound one after it still applies.
 */
const log = createLogger("serving-test", "silent");
const base = mkdtempSync(join(tmpdir(), "pangea-sync-"));
const models = new ModelManager("ctr", base, 1, log);
let server: RunningServer;

beforeAll(async () => {
  writeVersion(base, 1);
  models.scan();
  server = await startServer("127.0.0.1", 0, (s) => addParameterSync(s, models, new MicroBatcher(0, 64), log), [PARAMETER_SYNC_SERVICE_NAME]);
});
afterAll(() => server.shutdown(100));

const D = SPEC.embeddingDim;
const params = denseParams(SPEC);

interface Update {
  seq: number;
  ids?: number[];
  rows?: Float32Array;
  rowsShape?: number[];
  tombstones?: number[];
  dense?: { shape: number[]; data: Float32Array }[];
}

function update(u: Update): Buffer {
  const ids = u.ids ?? [];
  return encodeSyncUpdate({
    seq: u.seq,
    ids: Uint32Array.from(ids.flatMap((n) => idWords(n))),
    rows: u.rows ?? new Float32Array(ids.length * D),
    rowsShape: u.rowsShape ?? [ids.length, D],
    tombstones: Uint32Array.from((u.tombstones ?? []).flatMap((n) => idWords(n))),
    dense: (u.dense ?? []).map((d, i) => ({ name: params[i]?.name ?? "x", ...d })),
  });
}

const push = (bytes: Buffer) => pushSync(server.address, bytes);

const row = (n: number) => {
  const s = models.current()!;
  const t = s.tables.get(1)!;
  const [lo, hi] = idWords(n);
  const r = t.find(lo, hi);
  return r < 0 ? null : Array.from(t.rows.subarray(r * D, r * D + D));
};

const goodDense = () => params.map((p) => ({ shape: [...p.shape], data: new Float32Array(p.shape.reduce((a, b) => a * b, 1)).fill(0.5) }));

describe("ParameterSync refuses bad updates whole", () => {
  it.each([
    ["a NaN row", { ids: [1, 2], rows: Float32Array.of(9, 9, 9, Number.NaN), tombstones: [3] }, /rows: row 1 holds NaN/],
    ["an infinite row", { ids: [1], rows: Float32Array.of(Number.POSITIVE_INFINITY, 0), tombstones: [3] }, /rows: row 0 holds Infinity/],
    ["rows of the wrong width", { ids: [1, 2], rows: new Float32Array(6).fill(9), rowsShape: [2, 3], tombstones: [3] }, /rows \[2, 3\] do not match 2 ids \(4 values at their slots' row widths 2\)/],
    // Another build whose architecture declares its params otherwise: the shapes agree, the names do not.
    ["a dense weight under another name", { ids: [1], rows: Float32Array.of(9, 9), tombstones: [3], dense: goodDense().map((d, i) => (i === 0 ? { ...d, name: "renamed.w" } : d)) }, /dense tensor 0 is "renamed\.w", where this serving's dlrm declares \S+ \(another build's model\?\)/],
    ["a dense weight of the wrong shape", { ids: [1], rows: Float32Array.of(9, 9), tombstones: [3], dense: goodDense().map((d, i) => (i === 0 ? { shape: [d.data.length], data: d.data } : d)) }, /has shape \[\d+\], the model's is \[\d+, \d+\]/],
    ["a non-finite dense weight", { ids: [1], rows: Float32Array.of(9, 9), tombstones: [3], dense: goodDense().map((d, i) => (i === 1 ? { shape: d.shape, data: d.data.map((x, k) => (k === 0 ? Number.NaN : x)) } : d)) }, /holds NaN at element 0/],
    ["too few dense tensors", { ids: [1], rows: Float32Array.of(9, 9), tombstones: [3], dense: goodDense().slice(1) }, /dense tensors, the model has/],
  ] as const)("%s: INVALID_ARGUMENT, counted, nothing applied", async (_what, u, message) => {
    const before = { r1: row(1), r2: row(2), r3: row(3), dense: models.current()!.dense.map((d) => d.slice()), refused: models.syncRefused };
    const err = (await push(update({ seq: 100, ...u } as Update)).then(() => null, (e: unknown) => e)) as grpc.ServiceError | null;
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/^SERVING_ERR_BAD_INPUT: parameter sync from orchestrator-test: /);
    expect(err?.details).toMatch(message);
    expect(models.syncRefused).toBe(before.refused + 1);
    expect([row(1), row(2), row(3)]).toEqual([before.r1, before.r2, before.r3]);
    expect(models.current()!.dense).toEqual(before.dense);
  });

  it.each([
    ["a row of a slot the model lacks", "ids", [1, 5 << 16], /ids: id 1 \(0x0005000000000001\) is of slot 5, which the served model does not have \(its slots: 1\)/],
    ["a row with the reserved top bit", "ids", [1, 0x80010000], /ids: id 1 \(0x8001000000000001\) has the reserved top bit set/],
    ["a tombstone of a slot the model lacks", "tombstones", [1, 7 << 16], /tombstones: id 0 \(0x0007000000000001\) is of slot 7/],
  ] as const)("%s: INVALID_ARGUMENT naming it, nothing applied (it was acknowledged as applied 0)", async (_what, where, [lo, hi], message) => {
    const before = { r1: row(1), refused: models.syncRefused };
    const ids = where === "ids" ? Uint32Array.of(...idWords(1), lo, hi) : Uint32Array.from(idWords(1));
    const tombstones = where === "tombstones" ? Uint32Array.of(lo, hi) : new Uint32Array(0);
    const n = ids.length / 2;
    const bytes = encodeSyncUpdate({ seq: 100, ids, rows: new Float32Array(n * D).fill(4), rowsShape: [n, D], tombstones, dense: [] });
    const err = (await push(bytes).then(() => null, (e: unknown) => e)) as grpc.ServiceError | null;
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(message);
    expect(models.syncRefused).toBe(before.refused + 1);
    expect(row(1)).toEqual(before.r1);
  });

  it("a refusal names a sender that gave no name by its connection (it read 'parameter sync from : rows ...')", async () => {
    const bytes = encodeSyncUpdate({ seq: 100, sender: "", ids: Uint32Array.from(idWords(1)), rows: Float32Array.of(Number.NaN, 0), rowsShape: [1, D], tombstones: new Uint32Array(0), dense: [] });
    const err = (await push(bytes).then(() => null, (e: unknown) => e)) as grpc.ServiceError | null;
    expect(err?.details).toMatch(/^SERVING_ERR_BAD_INPUT: parameter sync from an unnamed sender at \S+: rows: row 0 holds NaN/);
  });

  it("a refused update does not use up its sequence: a sound one with the same sequence then applies", async () => {
    const ack = await push(update({ seq: 100, ids: [1, 2], rows: Float32Array.of(7, 7, 8, 8), tombstones: [3], dense: goodDense() }));
    expect(ack).toMatchObject({ rowsApplied: 2n, rowsRemoved: 1n, denseApplied: true });
    expect([row(1), row(2), row(3)]).toEqual([[7, 7], [8, 8], null]);
    expect(models.current()!.dense[0]![0]).toBe(0.5);
  });

  it("an id evicted and made again since the last update (a tombstone and a row) keeps its new row", async () => {
    expect(row(1)).toEqual([7, 7]);
    const ack = await push(update({ seq: 101, ids: [1], rows: Float32Array.of(5, 5), tombstones: [1] }));
    expect(ack).toMatchObject({ rowsApplied: 1n, rowsRemoved: 1n });
    expect(row(1)).toEqual([5, 5]);
  });
});

describe("ParameterSync before any version is loaded", () => {
  it("is UNAVAILABLE, saying sync updates a loaded version and how a job exports the first one", async () => {
    const empty = new ModelManager("ctr", mkdtempSync(join(tmpdir(), "pangea-sync-empty-")), 1, log);
    empty.scan();
    const bare = await startServer("127.0.0.1", 0, (s) => addParameterSync(s, empty, new MicroBatcher(0, 64), log), [PARAMETER_SYNC_SERVICE_NAME]);
    try {
      const err = (await pushSync(bare.address, update({ seq: 1, ids: [1], rows: Float32Array.of(9, 9) })).then(() => null, (e: unknown) => e)) as grpc.ServiceError | null;
      expect(err?.code).toBe(grpc.status.UNAVAILABLE);
      expect(err?.details).toBe(
        "SERVING_ERR_NOT_READY: no model version loaded to apply parameter sync from orchestrator-test to: sync updates a version serving has loaded; export one first (a job with --export-dir exports its first checkpoint, so give it a checkpoint cadence such as --checkpoint-every-steps)",
      );
    } finally {
      await bare.shutdown(100);
    }
  });
});
