import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { nativeBlas } from "@pangea/blas";
import { EmbeddingStore, type SlotConfig } from "../src/embeddings/embedding-store.js";
import { readSlotConfig } from "@pangea/service-flags";
import { slotConfigOver } from "../src/embeddings/slot-config.js";
import { defaultSlotConfig } from "../src/job/job.js";
import { OrchestratorErrors } from "../src/errors.js";

const base: SlotConfig = defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.05 }, 4);
const id = (slot: number, h: number) => [h, (slot << 16) >>> 0] as const;
const dir = mkdtempSync(join(tmpdir(), "pangea-store-"));

describe("EmbeddingStore", () => {
  it("with slots of different row widths: offsets side by side in id order, and changes drained side by side", () => {
    const store = new EmbeddingStore(base, new Map([[7, { ...base, dim: 2 }]]), 1);
    store.trackChanges();
    const ids = Uint32Array.from([...id(3, 1), ...id(7, 1), ...id(3, 2)]);
    const { offsets, uniform } = store.rowOffsets(ids, 3);
    expect(Array.from(offsets)).toEqual([0, 4, 6, 10]);
    expect(uniform).toBeNull();
    expect(store.rowOffsets(Uint32Array.from([...id(3, 1), ...id(3, 2)]), 2).uniform).toBe(4);
    const out = new Float32Array(10);
    for (let i = 0; i < 3; i++) store.read(ids[2 * i]!, ids[2 * i + 1]!, false, out, offsets[i]!, offsets[i + 1]! - offsets[i]!);
    const changed = store.drainChanges();
    expect(changed.ids.length / 2).toBe(3);
    expect(changed.rows.length).toBe(10);
    expect(changed.width).toBeNull();
    // Each drained row is its id's row as read.
    for (let i = 0, at = 0; i < 3; i++) {
      const w = store.widthOf(changed.ids[2 * i + 1]!);
      const k = [0, 1, 2].find((j) => ids[2 * j] === changed.ids[2 * i] && ids[2 * j + 1] === changed.ids[2 * i + 1])!;
      expect(Array.from(changed.rows.subarray(at, at + w))).toEqual(Array.from(out.subarray(offsets[k]!, offsets[k + 1]!)));
      at += w;
    }
  });

  it("a pull's many ids at once (readMany, on the addon when built) read, create, filter and count exactly as read() one at a time", () => {
    // Two stores fed the same pulls: one by readMany, one id at a time. Slots of two widths, one with an occurrence
    // threshold, ids repeated within a pull, new ids mixed with known ones, a slot whose table appears mid-pull, read-only pulls.
    const perSlot = new Map([[7, { ...base, dim: 2 }], [5, { ...base, occurrenceThreshold: 2 }]]);
    const many = new EmbeddingStore(base, perSlot, 3);
    const one = new EmbeddingStore(base, perSlot, 3);
    let seed = 11;
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8; // the high bits: the low ones of this generator cycle fast
    for (let pull = 0; pull < 12; pull++) {
      // Up to 8,000 ids a slot: tables grow their rows (from 1,024) and rehash their indexes (past 1,433) while pulls create rows.
      const n = 1500 + (next() % 1500);
      const words: number[] = [];
      for (let i = 0; i < n; i++) words.push(...id([3, 5, 7, 9 + (pull % 3)][next() % 4]!, next() % 8000));
      const ids = Uint32Array.from(words);
      const readOnly = pull % 4 === 3;
      const { offsets } = many.rowOffsets(ids, n);
      const a = new Float32Array(offsets[n]!).fill(5);
      const b = new Float32Array(offsets[n]!).fill(5);
      many.readMany(ids, n, readOnly, a, offsets);
      for (let i = 0; i < n; i++) one.read(ids[2 * i]!, ids[2 * i + 1]!, readOnly, b, offsets[i]!, offsets[i + 1]! - offsets[i]!);
      expect(a).toEqual(b);
      expect(many.stats()).toEqual(one.stats());
    }
    // The same rows, in the same row order, in every table (one grown past a rehash).
    expect(Math.max(...[...many.tables.values()].map((t) => t.size))).toBeGreaterThan(1500);
    for (const [slot, t] of one.tables) {
      const u = many.tables.get(slot)!;
      expect(u.rowIds.subarray(0, 2 * u.size)).toEqual(t.rowIds.subarray(0, 2 * t.size));
      expect(u.weights.subarray(0, u.size * u.dim)).toEqual(t.weights.subarray(0, t.size * t.dim));
    }
    // findRows answers what find() answers, id by id, with each table's number.
    const probe = Uint32Array.from([...id(3, 1), ...id(3, 100_000), ...id(7, 5), ...id(12, 5), ...id(5, 3)]);
    const found = many.findRows(probe, 5);
    for (let i = 0; i < 5; i++) {
      const t = many.tables.get(probe[2 * i + 1]! >>> 16);
      expect(found.tables[i]).toBe(t ? [...many.tables.values()].indexOf(t) : -1);
      if (t) expect(many.tableAt(found.tables[i]!)).toBe(t);
      expect(found.rows[i]).toBe(t ? t.find(probe[2 * i]!, probe[2 * i + 1]!) : -1);
    }
    // A width that disagrees with the table's is refused, as read() refuses it.
    expect(() => many.readMany(Uint32Array.from(id(7, 5)), 1, false, new Float32Array(4), Int32Array.from([0, 4]))).toThrow("slot 7 has embedding dim 2, the request reads 4");
    // A read-only pull of an id that has its row (the first of slot 7's table).
    const known7 = many.tables.get(7)!.rowIds.subarray(0, 2);
    expect(() => many.readMany(Uint32Array.from(known7), 1, true, new Float32Array(4), Int32Array.from([0, 4]))).toThrow("slot 7 has embedding dim 2, the request reads 4");
  });

  it("a training pull's new ids get their rows at once (on the addon when built): the rows, state, stamps, index and tracked changes read() makes, for every initializer", () => {
    // Per slot: uniform (the default), zeros, ones, a constant; Adam (two state values a weight) on one slot, FTRL on
    // another; a clock that moves between pulls; parameter sync tracking changes. Ids repeat within a pull.
    const clock = { t: 1_700_000_000 };
    const now = () => clock.t;
    const perSlot = new Map<number, SlotConfig>([
      [4, { ...base, initializer: { kind: "zeros" } }],
      [5, { ...base, initializer: { kind: "ones" }, optimizer: "adam", hyper: {} }],
      [6, { ...base, dim: 3, initializer: { kind: "constant", value: -0.25 }, optimizer: "ftrl", hyper: {} }],
      [8, { ...base, initializer: { kind: "uniform", range: 0.3 } }],
    ]);
    const many = new EmbeddingStore(base, perSlot, 0x1_2345_6789, Number.POSITIVE_INFINITY, now);
    const one = new EmbeddingStore(base, perSlot, 0x1_2345_6789, Number.POSITIVE_INFINITY, now);
    many.trackChanges();
    one.trackChanges();
    // With the addon, no id of these pulls goes through read(): the rows compared below are the batch path's.
    const oneAtATime = vi.spyOn(many, "read");
    let seed = 5;
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
    for (let pull = 0; pull < 6; pull++) {
      clock.t += pull;
      const n = 3000;
      const words: number[] = [];
      for (let i = 0; i < n; i++) words.push(...id([3, 4, 5, 6, 8][next() % 5]!, next() % 5000));
      const ids = Uint32Array.from(words);
      const { offsets } = many.rowOffsets(ids, n);
      const a = new Float32Array(offsets[n]!);
      const b = new Float32Array(offsets[n]!);
      many.readMany(ids, n, false, a, offsets);
      for (let i = 0; i < n; i++) one.read(ids[2 * i]!, ids[2 * i + 1]!, false, b, offsets[i]!, offsets[i + 1]! - offsets[i]!);
      expect(a).toEqual(b);
      const [ca, cb] = [many.drainChanges(), one.drainChanges()];
      expect(ca.ids).toEqual(cb.ids);
      expect(ca.rows).toEqual(cb.rows);
    }
    expect(oneAtATime).toHaveBeenCalledTimes(nativeBlas().blas ? 0 : 6 * 3000);
    expect(many.stats()).toEqual(one.stats());
    for (const [slot, t] of one.tables) {
      const u = many.tables.get(slot)!;
      expect(u.size).toBe(t.size);
      expect(u.rowIds.subarray(0, 2 * u.size)).toEqual(t.rowIds.subarray(0, 2 * t.size));
      expect(u.weights.subarray(0, u.size * u.dim)).toEqual(t.weights.subarray(0, t.size * t.dim));
      expect(u.state.subarray(0, u.size * u.stateSize)).toEqual(t.state.subarray(0, t.size * t.stateSize));
      expect(u.lastUpdate.subarray(0, u.size)).toEqual(t.lastUpdate.subarray(0, t.size));
      expect(u.index).toEqual(t.index);
    }
    // The initializers did what they say (not merely the same wrong thing twice).
    const w = (slot: number) => Array.from(many.tables.get(slot)!.weights.subarray(0, 4 * 8));
    expect(w(4).every((x) => x === 0)).toBe(true);
    expect(w(5).every((x) => x === 1)).toBe(true);
    expect(Array.from(many.tables.get(6)!.weights.subarray(0, 9)).every((x) => x === -0.25)).toBe(true);
    expect(w(8).every((x) => Math.abs(x) <= 0.3) && new Set(w(8)).size === 32 && w(8).some((x) => Math.abs(x) > 0.05)).toBe(true);
  });

  it("a training pull that would stop partway, or make tables, is read exactly as one id at a time: the same tables in the same order, the same error", () => {
    // Each case: one store read by readMany, one id at a time; then the whole state is compared.
    const tbl = 2048 * 12 + 1024 * ((4 + 4) * 4 + 12); // a fresh table of width 4: index and 1,024 rows with Adagrad's state
    const both = (perSlot: Map<number, SlotConfig>, max: number, clock: number, setup: (s: EmbeddingStore) => void, words: number[], offsets?: Int32Array) => {
      const [many, one] = [0, 1].map(() => {
        const s = new EmbeddingStore(base, perSlot, 9, max, () => clock);
        setup(s);
        s.trackChanges();
        return s;
      }) as [EmbeddingStore, EmbeddingStore];
      const ids = Uint32Array.from(words);
      const n = ids.length / 2;
      const at = offsets ?? many.rowOffsets(ids, n).offsets;
      const [a, b] = [new Float32Array(at[n]!), new Float32Array(at[n]!)];
      const errorOf = (f: () => void) => {
        try {
          f();
          return null;
        } catch (e) {
          return (e as Error).message;
        }
      };
      const ea = errorOf(() => many.readMany(ids, n, false, a, at));
      const eb = errorOf(() => {
        for (let i = 0; i < n; i++) one.read(ids[2 * i]!, ids[2 * i + 1]!, false, b, at[i]!, at[i + 1]! - at[i]!);
      });
      expect(ea).toBe(eb);
      if (!ea) expect(a).toEqual(b);
      expect([...many.tables.keys()]).toEqual([...one.tables.keys()]);
      expect(many.stats()).toEqual(one.stats());
      for (const [slot, t] of one.tables) {
        const u = many.tables.get(slot)!;
        expect([u.size, u.index, u.weights, u.state, u.lastUpdate]).toEqual([t.size, t.index, t.weights, t.state, t.lastUpdate]);
      }
      const [ca, cb] = [many.drainChanges(), one.drainChanges()];
      expect([ca.ids, ca.rows]).toEqual([cb.ids, cb.rows]);
      return ea;
    };
    const threshold = new Map([[5, { ...base, occurrenceThreshold: 2 }]]);
    const run = (slot: number, from: number, n: number) => Array.from({ length: n }, (_, i) => id(slot, from + i)).flat();
    // A threshold slot's table made first (its id comes first), then an eager slot's.
    expect(both(threshold, Infinity, 7, () => {}, [...id(5, 1), ...run(3, 1, 50), ...id(5, 1)])).toBeNull();
    // A width that is not its slot's, partway: the ids before it get their rows, those after do not.
    expect(both(new Map(), Infinity, 7, () => {}, [...run(3, 1, 20), ...id(4, 1), ...run(3, 100, 20)], Int32Array.from({ length: 42 }, (_, i) => 4 * i - (i > 20 ? 2 : 0)))).toMatch(/slot 4 has embedding dim 4, the request reads 2/);
    // An undeclared slot partway.
    expect(both(new Map(), Infinity, 7, (s) => s.declareSlots([3, 4]), [...run(3, 1, 20), ...id(9, 1), ...run(4, 1, 20)], Int32Array.from({ length: 42 }, (_, i) => 4 * i))).toMatch(/has slot 9, which the job's data does not declare/);
    // A limit with room for slot 3's growth, which comes before the first ids of two slots with no table yet, but not
    // for slot 4's new table after it: both stop at slot 4's first id (had the tables been made first, slot 3's growth
    // would have been refused instead).
    expect(both(new Map(), 2 * tbl + 100, 7, () => {}, [...run(3, 0, 1100), ...id(4, 1), ...id(5, 1)])).toMatch(/slot 4's new table needs/);
    // With room for both new tables too, nothing is refused.
    expect(both(new Map(), 4 * tbl + 100, 7, () => {}, [...run(3, 0, 1100), ...id(4, 1), ...id(5, 1)])).toBeNull();
    // The frequency filter (4 MiB) allocated by a threshold id earlier in the pull, then an eager table's growth.
    expect(both(threshold, 2 * tbl + (4 << 20) + 1000, 7, () => {}, [...id(5, 1), ...run(3, 0, 1100)])).toMatch(/would exceed the memory limit/);
    // The same pull well within a limit, every table there already: made at once, the same as one at a time.
    expect(both(new Map(), 1 << 30, 7, (s) => [3, 4].forEach((slot) => s.table(slot)), [...run(3, 0, 3000), ...run(4, 7, 3000)])).toBeNull();
    // A clock in milliseconds (past 2^32): stamps wrap as a Uint32Array store wraps them.
    expect(both(new Map(), Infinity, 1_700_000_000_123, () => {}, run(3, 0, 100))).toBeNull();
  });

  it("new ids at the memory limit: a pull made at once stops where one at a time stops, with the same rows and error", () => {
    const make = () => new EmbeddingStore(base, new Map(), 1, 400_000, () => 7);
    const [many, one] = [make(), make()];
    let err: unknown = null;
    let errOne: unknown = null;
    for (let pull = 0; pull < 20 && !err; pull++) {
      const ids = Uint32Array.from(Array.from({ length: 1500 }, (_, i) => id(1 + (i % 3), pull * 1500 + i)).flat());
      const { offsets } = many.rowOffsets(ids, 1500);
      try {
        many.readMany(ids, 1500, false, new Float32Array(offsets[1500]!), offsets);
      } catch (e) {
        err = e;
      }
      try {
        for (let i = 0; i < 1500; i++) one.read(ids[2 * i]!, ids[2 * i + 1]!, false, new Float32Array(4), 0, 4);
      } catch (e) {
        errOne = e;
      }
    }
    expect(OrchestratorErrors.is(err, "ORCH_ERR_MEMORY_LIMIT")).toBe(true);
    expect((err as Error).message).toBe((errOne as Error).message);
    expect(many.stats()).toEqual(one.stats());
    expect(many.memoryBytes()).toBeLessThanOrEqual(400_000);
  });

  it("a step's rows updated at once (applyMeans, Adagrad on the addon when built) get the bits of the optimizer's own loop, with and without L2", () => {
    for (const l2 of [0, 0.02]) {
      const cfg = { ...base, hyper: { ...base.hyper, l2 } };
      const a = new EmbeddingStore(cfg, new Map(), 1).table(3);
      const b = new EmbeddingStore(cfg, new Map(), 1).table(3);
      for (let h = 0; h < 50; h++) {
        a.findOrInsert(h, 3 << 16);
        b.findOrInsert(h, 3 << 16);
      }
      const rows = Int32Array.from([7, 0, 49, 13]);
      const sums = Float32Array.from({ length: 4 * a.dim }, (_, k) => (k % 5 === 0 ? -0 : Math.sin(k) * 3));
      const now = a.clock();
      a.applyMeans(rows, 4, sums.slice(), 2, now);
      const mean = sums.map((x) => x / 2);
      rows.forEach((row, i) => b.applyGradient(row, mean, i * b.dim, now));
      expect(a.weights).toEqual(b.weights);
      expect(a.state).toEqual(b.state);
      expect(a.lastUpdate).toEqual(b.lastUpdate);
    }
  });

  it("keeps one table per slot, each with its own optimizer", () => {
    const store = new EmbeddingStore(base, new Map([[7, { ...base, optimizer: "ftrl" }]]), 1);
    store.rowForTraining(...id(3, 1));
    store.rowForTraining(...id(7, 1));
    expect(store.table(3).optimizer.name).toBe("adagrad");
    expect(store.table(7).optimizer.name).toBe("ftrl");
    expect(store.stats().perSlot.map((s) => [s.slot, s.rows])).toEqual([[3, 1], [7, 1]]);
  });

  it("gives an id a row only after its slot's occurrence threshold; before, it reads as zeros", () => {
    const store = new EmbeddingStore(base, new Map([[5, { ...base, occurrenceThreshold: 3 }]]), 1);
    const out = new Float32Array(4).fill(9);
    store.read(...id(5, 42), false, out, 0, 4);
    expect(Array.from(out)).toEqual([0, 0, 0, 0]);
    store.read(...id(5, 42), false, out, 0, 4);
    expect(store.table(5).find(...id(5, 42))).toBe(-1);
    store.read(...id(5, 42), false, out, 0, 4); // third sighting: admitted
    expect(store.table(5).find(...id(5, 42))).toBeGreaterThanOrEqual(0);
    expect(Array.from(out).some((v) => v !== 0)).toBe(true);
    // Slots without a threshold create rows at once.
    store.read(...id(6, 42), false, out, 0, 4);
    expect(store.table(6).size).toBe(1);
    expect(store.stats()).toMatchObject({ filtered: 2, admitted: 1, rows: 2 });
    expect(store.stats().perSlot.map((p) => [p.slot, p.admitted])).toEqual([[5, 1], [6, 0]]);
  });

  it("read-only lookups never create rows or count sightings", () => {
    const store = new EmbeddingStore(base, new Map(), 1);
    const out = new Float32Array(4);
    store.read(...id(1, 1), true, out, 0, 4);
    expect(store.size()).toBe(0);
  });

  it("evicts rows past their slot's expire time on sweep and logs their ids", () => {
    let now = 100;
    const store = new EmbeddingStore(base, new Map([[2, { ...base, expireSeconds: 50 }]]), 1, undefined, () => now);
    store.rowForTraining(...id(2, 1));
    store.rowForTraining(...id(3, 1)); // no expiry for slot 3
    now = 200;
    expect(store.sweep()).toBe(1);
    expect(store.size()).toBe(1);
    expect(store.evictionLog).toEqual([1, (2 << 16) >>> 0]);
    expect(store.stats().perSlot.find((s) => s.slot === 2)!.evicted).toBe(1);
  });

  it("counts a new table's first rows against the memory limit: a limit below them refuses the first row, making no table", () => {
    const store = new EmbeddingStore(base, new Map(), 1, 100);
    let err: unknown;
    try {
      store.rowForTraining(...id(1, 0));
    } catch (e) {
      err = e;
    }
    expect(OrchestratorErrors.is(err, "ORCH_ERR_MEMORY_LIMIT")).toBe(true);
    expect((err as Error).message).toMatch(/^embedding tables would exceed the memory limit of 100 bytes \(now 0, slot 1's new table needs \d+\)$/);
    expect(store.memoryBytes()).toBe(0);
    expect(store.stats().memoryLimitHits).toBe(1);
  });

  it("refuses to grow past the memory limit with ORCH_ERR_MEMORY_LIMIT, keeping what it has", () => {
    const store = new EmbeddingStore(base, new Map(), 1, 300_000);
    let err: unknown;
    let i = 0;
    try {
      for (; i < 100_000; i++) store.rowForTraining(...id(1, i));
    } catch (e) {
      err = e;
    }
    expect(OrchestratorErrors.is(err, "ORCH_ERR_MEMORY_LIMIT")).toBe(true);
    expect((err as Error).message).toMatch(/would exceed the memory limit of 300000 bytes/);
    expect(store.size()).toBe(i);
    expect(store.memoryBytes()).toBeLessThanOrEqual(300_000);
    expect(store.table(1).find(...id(1, 0))).toBeGreaterThanOrEqual(0);
    expect(store.stats().memoryLimitHits).toBe(1);
  });
});

describe("--slot-config", () => {
  const write = (json: unknown) => {
    const p = join(dir, `slots-${Math.random()}.json`);
    writeFileSync(p, typeof json === "string" ? json : JSON.stringify(json));
    return p;
  };

  it("merges defaults and per-slot overrides over the flags' settings", () => {
    const { defaults, perSlot } = slotConfigOver(
      readSlotConfig(write({ default: { expireSeconds: 3600 }, slots: { "3": { occurrenceThreshold: 5, optimizer: "ftrl", hyper: { learningRate: 0.2 } }, "4": { initializer: { kind: "zeros" } } } })),
      base,
    );
    expect(defaults).toMatchObject({ optimizer: "adagrad", expireSeconds: 3600, hyper: { learningRate: 0.05 } });
    expect(perSlot.get(3)).toMatchObject({ optimizer: "ftrl", occurrenceThreshold: 5, expireSeconds: 3600, hyper: { learningRate: 0.2 } });
    expect(perSlot.get(4)).toMatchObject({ optimizer: "adagrad", initializer: { kind: "zeros" } });
  });

  it.each([
    [{ slots: { "1": { optimizer: "lion" } } }, 'slots.1.optimizer: expected one of "sgd", "adagrad", "ftrl", "adam", "amsgrad", "momentum", "rmsprop", "adadelta", got "lion"'],
    [{ slots: { x: {} } }, 'slots.x: a slot is named by its number (as in the data and the feature list), e.g. "7"; got "x"'],
    [{ slots: { "40000": {} } }, "slot 40000 is outside the v2 layout's range"],
    [{ slots: { "1": { occurrenceThreshold: -1 } } }, "slots.1.occurrenceThreshold: expected a number >= 0, got -1"],
    [{ slots: { "1": { hyper: { learningRat: 1 } } } }, 'slots.1.hyper: unknown field "learningRat"; hyper takes learningRate, initialAccumulator'],
    [{ slots: { "1": { dimm: 8 } } }, 'slots.1: unknown field "dimm"; a slot takes dim, initializer, optimizer, hyper, occurrenceThreshold, expireSeconds, pooling'],
    [{ slot: {} }, '(root): unknown field "slot"; the file takes default, slots'],
    [{ slots: { "1": { dim: "8" } } }, 'slots.1.dim: expected a number, got "8"'],
    [{ slots: { "1": { dim: 2.5 } } }, "slots.1.dim: expected a whole number, got 2.5"],
    // The model's bound on a dim, named as the file's field (the model's own check names the slot alone).
    [{ slots: { "7": { dim: 100000 } } }, "slots.7.dim: expected an embedding dim 1..1024, got 100000"],
    [{ default: { dim: 0 } }, "default.dim: expected an embedding dim 1..1024, got 0"],
    [{ default: { pooling: "max" } }, 'default.pooling: expected one of "sum", "mean", "sqrtn", got "max"'],
    [{ slots: { "1": { initializer: { kind: "normal" } } } }, 'slots.1.initializer.kind: expected one of "zeros", "ones", "constant", "uniform", got "normal"'],
    [{ slots: [1] }, "slots: expected an object, got a list"],
    ["{", "not valid JSON"],
    ['{"slots": {"3": {"dim": 8, "optimizer": "ftrl", "dim": 16}}}', 'gives "slots.3.dim" twice; give each field once'],
    ['{"slots": {"3": {"dim": 32}, "03": {"dim": 16}}}', "slots.3 and slots.03 both name slot 3; give each slot once"],
  ])("refuses %j naming the field", (json, message) => {
    try {
      readSlotConfig(write(json));
      expect.unreachable();
    } catch (err) {
      expect(OrchestratorErrors.is(err, "ORCH_ERR_BAD_SLOT_CONFIG")).toBe(true);
      expect((err as Error).message).toContain(message);
    }
  });
});

describe("EmbeddingStore batch administration", () => {
  it("assign sets rows (restarting their optimizer state), evict removes and logs them", () => {
    const store = new EmbeddingStore(base, new Map(), 1);
    const ids = Uint32Array.from([1, 0x10000, 2, 0x10000]);
    store.rowForTraining(1, 0x10000);
    const t = store.table(1);
    t.applyGradient(t.find(1, 0x10000), new Float32Array([1, 1, 1, 1]), 0);
    expect(store.assign(ids, 2, Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), 4)).toBe(2);
    const out = new Float32Array(4);
    store.read(2, 0x10000, true, out, 0, 4);
    expect(Array.from(out)).toEqual([5, 6, 7, 8]);
    const r = t.find(1, 0x10000);
    expect(Array.from(t.state.subarray(r * 4, r * 4 + 4)).map((x) => +x.toFixed(6))).toEqual([0.1, 0.1, 0.1, 0.1]);
    expect(store.evict(Uint32Array.from([1, 0x10000, 9, 0x10000]), 2)).toBe(1);
    expect(store.size()).toBe(1);
    expect(store.evictionLog).toEqual([1, 0x10000]);
  });

  it.each([
    ["a wrong dim", () => new EmbeddingStore(base, new Map(), 1).assign(Uint32Array.from([1, 0x10000]), 1, new Float32Array(8), 8), "slot 1 has embedding dim 4, the assignment gives 8"],
    ["a NaN value", () => new EmbeddingStore(base, new Map(), 1).assign(Uint32Array.from([1, 0x10000]), 1, Float32Array.from([1, Number.NaN, 0, 0]), 4), "has a value that is NaN, infinite or above 1000000 in magnitude"],
    ["a value of 1e30", () => new EmbeddingStore(base, new Map(), 1).assign(Uint32Array.from([1, 0x10000]), 1, Float32Array.from([1, 1e30, 0, 0]), 4), "has a value that is NaN, infinite or above 1000000 in magnitude"],
  ])("assign refuses %s", (_what, fn, message) => {
    expect(fn).toThrow(message);
  });

  it("a refused assignment sets none of its rows, not even those before the bad one", () => {
    const store = new EmbeddingStore(base, new Map(), 1);
    const ids = Uint32Array.from([1, 0x10000, 2, 0x10000]);
    expect(() => store.assign(ids, 2, Float32Array.from([1, 2, 3, 4, 5, Number.POSITIVE_INFINITY, 7, 8]), 4)).toThrow(/infinite/);
    expect(store.stats().perSlot.reduce((n, p) => n + p.rows, 0)).toBe(0);
  });

  it("refuses ids of slots the job's data does not declare", () => {
    const store = new EmbeddingStore(base, new Map(), 1);
    store.declareSlots([1, 2]);
    const out = new Float32Array(4);
    store.read(5, 0x20000, false, out, 0, 4);
    try {
      store.read(5, 0x30000, false, out, 0, 4);
      expect.unreachable();
    } catch (err) {
      expect(OrchestratorErrors.is(err, "ORCH_ERR_UNKNOWN_SLOT")).toBe(true);
      expect((err as Error).message).toBe(`feature id ${(3n << 48n) | 5n} has slot 3, which the job's data does not declare`);
    }
  });
});
