import type { FeatureInputs } from "@pangea/features";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { CHECKPOINT_FORMAT, EXPORT_FORMAT, parseModelSpec, type ModelSpec } from "@pangea/model";
import { OrchestratorErrors } from "../errors.js";
import { makeDirs, MAX_MANIFEST_BYTES, printable, readChecked, readRegularFile, sha256Hex, shardOfId, valueSnippet } from "@pangea/kit";
import type { DenseStore } from "../params/dense-store.js";
import type { EmbeddingStore, StoreCounters } from "../embeddings/embedding-store.js";
import type { SavedCounters } from "../job/job-counters.js";
import type { SavedTaskLosses } from "../job/task-status.js";
import type { EvalReport__Output } from "@pangea/schema";
import { jobDirGone } from "./job-dir-gone.js";

export { CHECKPOINT_FORMAT };
export const CHECKPOINT_VERSION = 2;

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  jobId: string;
  step: number;
  createdAt: string;
  /** Checkpoints written before architectures hold DLRM's bottomMlp/topMlp here; loading reads them as a dlrm spec. */
  model: ModelSpec;
  /** The dense optimizer whose state dense-adam-{m,v}.f32 hold (absent in older checkpoints: adam). */
  denseOptimizer?: string;
  /** The slot id of each of the model's embedding columns, in order (absent in older checkpoints). */
  slotIds?: number[];
  denseParams: { name: string; shape: number[] }[];
  embeddingRows: number;
  /** One entry per slot table: its files are slot-<slot>.{ids.u64,weights.f32,state.f32,updated.u32}. */
  tables: { slot: number; dim: number; rows: number; optimizer: string; stateSize: number }[];
  /** The occurrence filter's counters are in filter.u16. */
  filterWidthLog2: number;
  /** Which parameter-server shard saved this: it holds the ids with id % count == index. */
  shard: { index: number; count: number };
  /** Every data file with its size and SHA-256. */
  files: Record<string, { bytes: number; sha256: string }>;
  /** Where training stood (absent in checkpoints of older versions and on shards > 0): what a resumed job continues from. */
  training?: TrainingProgress;
  /** The saving shard's embedding store totals (absent in older checkpoints: zero). */
  storeCounters?: StoreCounters;
}

/** Enough to resume a job exactly: its step, data position and optimizer clock. */
export interface TrainingProgress {
  mode: string;
  batchesPerStep: number;
  step: number;
  /** Global batches finished; the data position (batch k covers records k*B .. k*B+B-1 of the source's order). */
  finishedBatches: number;
  /** async: batches handed out but unfinished at the checkpoint (handed out again on resume). */
  outstanding: number[];
  /** Dense optimizer updates so far (Adam's bias-correction clock; the parameter version). */
  denseUpdates: number;
  batchSize: number;
  samples: number;
  /** The job's running totals (absent in older checkpoints: zero; see readCounters). */
  counters?: SavedCounters;
  /** Each task's last and smoothed training loss (multi-task jobs; absent in older checkpoints). */
  taskLosses?: SavedTaskLosses;
  /** The held-out evaluations so far, oldest first (absent in older checkpoints: none); a resumed job keeps them. */
  evaluations?: EvalReport__Output[];
  /** The data the job trained on (absent in older checkpoints: not checked on resume). */
  data?: TrainedData;
}

/**
 * What identifies a job's data for a resume: the data position (finishedBatches) means
 * nothing on other data. Record counts, not the description: the description names
 * paths and caches that may differ between starts of the same data.
 */
export interface TrainedData {
  description: string;
  trainRecords: number;
  evalRecords: number;
  /** How the records' features became inputs (an export's feature list must agree); absent from older checkpoints and computes. */
  featureInputs?: FeatureInputs;
  /** The training files' sizes and sampled bytes, digested (SourceInfo.content_sample); absent for data made on demand and in older checkpoints. */
  contentSample?: string;
}

export interface TableData {
  slot: number;
  dim: number;
  rows: number;
  optimizer: string;
  stateSize: number;
  /** (lo, hi) words per row. */
  ids: Uint32Array;
  weights: Float32Array;
  /** Optimizer state, stateSize floats per row. */
  state: Float32Array;
  /** Last update per row, seconds. */
  lastUpdate: Uint32Array;
}

export interface CheckpointData {
  manifest: CheckpointManifest;
  dense: Float32Array[];
  momentM: Float32Array[];
  momentV: Float32Array[];
  tables: TableData[];
  filter: Uint16Array;
}

function bytesOf(a: Float32Array | Uint32Array | Uint16Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function concat(arrays: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/** Where a job's checkpoints go: one directory per job under --checkpoint-dir. */
export function jobCheckpointDir(root: string, jobId: string): string {
  return join(root, jobId);
}

/** Shard 0 (with the dense parameters) writes step-N; shard i > 0 writes step-N.shard-i beside it. */
export function stepCheckpointDir(root: string, jobId: string, step: number, shardIndex = 0): string {
  return join(jobCheckpointDir(root, jobId), shardIndex === 0 ? `step-${step}` : `step-${step}.shard-${shardIndex}`);
}

/** Writes a file and fsyncs it, so a rename after it publishes complete bytes. */
export function writeDurably(path: string, data: Buffer): void {
  const fd = openSync(path, "w");
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Puts `value` at `path` as indented JSON, whole or not at all (written beside it, synced, renamed over it). */
export function writeJsonAtomically(path: string, value: unknown): void {
  writeDurably(`${path}.tmp`, Buffer.from(`${JSON.stringify(value, null, 2)}\n`));
  renameSync(`${path}.tmp`, path);
}

function fsyncDir(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a checkpoint atomically: every file goes into a temporary
 * directory, is fsynced, and the directory is renamed into place, so a crash
 * leaves either the whole checkpoint or none. Returns its directory.
 */
export function saveCheckpoint(
  root: string,
  jobId: string,
  step: number,
  model: ModelSpec,
  dense: DenseStore | null,
  store: EmbeddingStore,
  shard = { index: 0, count: 1 },
  training?: TrainingProgress,
  slotIds?: readonly number[],
  /** The job's directory is the lock holder's (it exists while the job runs): gone, the write fails instead of making it again. */
  locked = false,
): string {
  const final = stepCheckpointDir(root, jobId, step, shard.index);
  const tmp = `${final}.tmp-${process.pid}`;
  try {
    if (!locked) makeDirs(jobCheckpointDir(root, jobId));
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    const files: Record<string, Buffer> = {
      "dense.f32": bytesOf(concat(dense?.values ?? [])),
      // The files keep their first names (checkpoints on disk use them) though Adagrad's accumulator is in -v too.
      "dense-adam-m.f32": bytesOf(concat(dense?.state.map((s) => s.m) ?? [])),
      "dense-adam-v.f32": bytesOf(concat(dense?.state.map((s) => s.v) ?? [])),
      "filter.u16": bytesOf(store.filter.snapshot()),
    };
    const tables = [...store.tables].sort(([a], [b]) => a - b);
    for (const [slot, t] of tables) {
      const rows = t.size;
      files[`slot-${slot}.ids.u64`] = bytesOf(t.rowIds.subarray(0, rows * 2));
      files[`slot-${slot}.weights.f32`] = bytesOf(t.weights.subarray(0, rows * t.dim));
      files[`slot-${slot}.state.f32`] = bytesOf(t.state.subarray(0, rows * t.stateSize));
      files[`slot-${slot}.updated.u32`] = bytesOf(t.lastUpdate.subarray(0, rows));
    }
    const manifest: CheckpointManifest = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      jobId,
      step,
      createdAt: new Date().toISOString(),
      model,
      ...(dense ? { denseOptimizer: dense.optimizer } : {}),
      denseParams: dense?.params.map((p) => ({ name: p.name, shape: [...p.shape] })) ?? [],
      embeddingRows: store.size(),
      tables: tables.map(([slot, t]) => ({ slot, dim: t.dim, rows: t.size, optimizer: t.optimizer.name, stateSize: t.stateSize })),
      filterWidthLog2: store.filter.widthLog2,
      shard,
      files: {},
      ...(training ? { training } : {}),
      storeCounters: store.counters(),
      ...(slotIds ? { slotIds: [...slotIds] } : {}),
    };
    for (const [name, data] of Object.entries(files)) {
      writeDurably(join(tmp, name), data);
      manifest.files[name] = { bytes: data.length, sha256: sha256Hex(data) };
    }
    // The manifest goes last: its presence marks the file set as complete.
    writeDurably(join(tmp, "manifest.json"), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    fsyncDir(tmp);
    clearTarget(final, jobId, step);
    renameSync(tmp, final);
    fsyncDir(jobCheckpointDir(root, jobId));
    return final;
  } catch (err) {
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      // the reason the write failed may also prevent the clean-up; report the write
    }
    // The job's directory removed under a locked write: the step's directory found no parent to be made in.
    if (locked && !existsSync(jobCheckpointDir(root, jobId))) throw jobDirGone(jobCheckpointDir(root, jobId), "it is gone");
    throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_IO", `cannot write checkpoint ${final}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Reads a checkpoint, refusing one whose manifest or any file is missing,
 * truncated or altered. A directory that is not there at all is not found (a
 * mistyped path), not corrupt.
 */
/** A checkpoint directory's manifest.json as parsed JSON, unchecked; an Error naming the directory if it cannot be read. */
export function manifestJson(dir: string): unknown {
  return JSON.parse(readRegularFile(join(dir, "manifest.json"), "manifest.json", (msg) => new Error(`${dir}: ${msg}`), { maxBytes: MAX_MANIFEST_BYTES }).toString("utf8"));
}

/**
 * The embedding rows of every shard's part of the checkpoint at `dir` (shard 0's step-N and its step-N.shard-i
 * siblings), from their manifests: what a job on several shards holds, which no one process does.
 */
export function checkpointRowsOfEveryShard(dir: string, psShards: number): number {
  let rows = 0;
  for (let i = 0; i < psShards; i++) {
    const part = i === 0 ? dir : `${dir}.shard-${i}`;
    const m = manifestJson(part) as Partial<CheckpointManifest>;
    if (typeof m.embeddingRows !== "number") throw new Error(`${part}/manifest.json has no embeddingRows`);
    rows += m.embeddingRows;
  }
  return rows;
}

export function loadCheckpoint(dir: string): CheckpointData {
  if (!existsSync(dir)) throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_NOT_FOUND", `checkpoint ${dir} not found`);
  const corrupt = (msg: string) => OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `checkpoint ${dir}: ${msg}`);
  const notOne = (msg: string) => OrchestratorErrors.create("ORCH_ERR_NOT_A_CHECKPOINT", `checkpoint ${dir}: ${msg}`);
  // A file given (its manifest.json, one of its data files): a checkpoint is the directory holding them.
  if (!statSync(dir).isDirectory()) throw notOne(`this is a file; a checkpoint is a directory (step-N${basename(dirname(dir)).startsWith("step-") ? `: ${dirname(dir)}` : ""})`);
  const manifestPath = join(dir, "manifest.json");
  if (!existsSync(manifestPath)) {
    // A job's directory given for one of its checkpoints: point at them rather than call it incomplete.
    const steps = listCheckpoints(dirname(dir), basename(dir));
    if (steps.length) throw notOne(`this is a job's checkpoint directory, not a checkpoint; give one of its step-N directories, e.g. the newest, ${steps.at(-1)!.dir}`);
    // A step-N directory (or a save's temporary step-N.tmp-PID, left by a save cut short), or one holding a checkpoint's
    // data, without its manifest is an incomplete checkpoint; any other directory is none.
    if (/^step-\d+(\.shard-\d+)?(\.tmp-\d+)?$/.test(basename(dir)) || existsSync(join(dir, "dense.f32"))) throw corrupt("no manifest.json (incomplete checkpoint)");
    throw notOne("no manifest.json: this is not a checkpoint (a checkpoint is a step-N directory a job writes under --checkpoint-dir/<job id>/)");
  }
  const text = readRegularFile(manifestPath, "manifest.json", corrupt, { maxBytes: MAX_MANIFEST_BYTES }).toString("utf8");
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(text) as CheckpointManifest;
  } catch (err) {
    throw corrupt(`manifest.json is not valid JSON: ${printable((err as Error).message, 160)}`);
  }
  if ((manifest.format as string) === EXPORT_FORMAT) throw notOne(`this is an exported model (pangea export's output), not a checkpoint; give the checkpoint it was exported from (a step-N directory under the job's --checkpoint-dir)`);
  if (manifest.format !== CHECKPOINT_FORMAT || manifest.version !== CHECKPOINT_VERSION) {
    // A manifest without the fields (`{}`) says so, not "format undefined vundefined".
    const m = manifest as Partial<Record<"format" | "version", unknown>> | null;
    const was = m?.format === undefined && m?.version === undefined ? "no format and version" : `format ${valueSnippet(m?.format)} v${valueSnippet(m?.version)}`;
    throw corrupt(`manifest.json has ${was}; a checkpoint's is ${CHECKPOINT_FORMAT} v${CHECKPOINT_VERSION}`);
  }
  try {
    manifest.model = parseModelSpec(manifest.model);
  } catch (err) {
    throw corrupt(`model: ${(err as Error).message}`);
  }
  const read = (name: string): Buffer => readChecked(dir, name, manifest.files, corrupt);
  const f32 = (b: Buffer) => new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  const split = (flat: Float32Array): Float32Array[] => {
    let at = 0;
    return manifest.denseParams.map((p) => {
      const n = p.shape.reduce((a, b) => a * b, 1);
      const part = flat.slice(at, at + n);
      at += n;
      return part;
    });
  };
  const u32 = (b: Buffer) => new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  const filterBuf = read("filter.u16");
  const tables = (manifest.tables ?? []).map((t): TableData => {
    const data = {
      ...t,
      ids: u32(read(`slot-${t.slot}.ids.u64`)),
      weights: f32(read(`slot-${t.slot}.weights.f32`)),
      state: f32(read(`slot-${t.slot}.state.f32`)),
      lastUpdate: u32(read(`slot-${t.slot}.updated.u32`)),
    };
    if (data.ids.length !== 2 * t.rows || data.weights.length !== t.rows * t.dim || data.state.length !== t.rows * t.stateSize || data.lastUpdate.length !== t.rows) {
      throw corrupt(`slot ${t.slot}'s files do not hold ${t.rows} rows of dim ${t.dim} and state ${t.stateSize}`);
    }
    return data;
  });
  return {
    manifest,
    dense: split(f32(read("dense.f32"))),
    momentM: split(f32(read("dense-adam-m.f32"))),
    momentV: split(f32(read("dense-adam-v.f32"))),
    tables,
    filter: new Uint16Array(filterBuf.buffer.slice(filterBuf.byteOffset, filterBuf.byteOffset + filterBuf.byteLength)),
  };
}

/**
 * Loads a checkpoint's tables into a store whose slot configuration matches
 * (same optimizer state layout per slot), and its occurrence counts.
 */
export function restoreStore(ck: CheckpointData, store: EmbeddingStore): void {
  restoreFilter(ck, store);
  restoreTables(ck.tables, store);
}

/**
 * A checkpoint's occurrence counts into a store. An empty saved filter (no slot had a threshold) leaves the
 * store's sketch unmade: reading `counters` makes it (4 MiB), which a job without thresholds never needs.
 */
export function restoreFilter(ck: CheckpointData, store: EmbeddingStore): void {
  if (ck.filter.length === 0) return;
  if (ck.filter.length !== store.filter.counters.length) {
    throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `checkpoint filter has ${ck.filter.length} counters, this store ${store.filter.counters.length}`);
  }
  store.filter.counters.set(ck.filter);
}

/** A checkpoint's store totals; missing or unusable fields (older checkpoints) read as zero. */
export function storeCountersOf(ck: CheckpointData): StoreCounters {
  const saved = (ck.manifest.storeCounters ?? {}) as Partial<Record<keyof StoreCounters, unknown>>;
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);
  const slots = Array.isArray(saved.slots) ? (saved.slots as Partial<Record<string, unknown>>[]) : [];
  return {
    filtered: n(saved.filtered),
    admitted: n(saved.admitted),
    evicted: n(saved.evicted),
    rejectedGradients: n(saved.rejectedGradients),
    memoryLimitHits: n(saved.memoryLimitHits),
    slots: slots.filter((s) => typeof s?.slot === "number").map((s) => ({ slot: s.slot as number, evicted: n(s.evicted), admitted: n(s.admitted) })),
  };
}

/**
 * Gives a resumed shard's store the totals its predecessor saved: each shard
 * its own when the shard count is unchanged; resharded, shard 0 takes the sum
 * of all of them (ids moved between shards, so per-shard totals mean nothing).
 */
export function restoreStoreCounters(shards: readonly CheckpointData[], count: number, index: number, store: EmbeddingStore): void {
  if (shards.length === count) {
    const own = shards.find((ck) => (ck.manifest.shard?.index ?? 0) === index);
    if (own) store.addCounters(storeCountersOf(own));
  } else if (index === 0) {
    for (const ck of shards) store.addCounters(storeCountersOf(ck));
  }
}

/** Loads table rows (one shard's checkpoint, or what reshard assigns a shard) into a store. */
export function restoreTables(tables: readonly TableData[], store: EmbeddingStore): void {
  for (const t of tables) {
    const table = store.table(t.slot);
    if (table.dim !== t.dim || table.stateSize !== t.stateSize) {
      throw OrchestratorErrors.create(
        "ORCH_ERR_CHECKPOINT_CORRUPT",
        `slot ${t.slot} was saved with dim ${t.dim} and ${t.optimizer} state ${t.stateSize}; this job's slot has dim ${table.dim} and ${table.optimizer.name} state ${table.stateSize}`,
      );
    }
    for (let r = 0; r < t.rows; r++) {
      table.restoreRow(t.ids[2 * r]!, t.ids[2 * r + 1]!, t.weights.subarray(r * t.dim, (r + 1) * t.dim), t.state.subarray(r * t.stateSize, (r + 1) * t.stateSize), t.lastUpdate[r]);
    }
  }
}

/**
 * Re-partitions the tables of a sharded checkpoint (every shard's data) onto
 * `count` shards: the rows each new shard must load, by id % count.
 */
export function reshard(shards: readonly CheckpointData[], count: number): TableData[][] {
  type Picks = { layout: TableData; from: TableData[]; rows: number[] };
  const targets: Map<number, Picks>[] = Array.from({ length: count }, () => new Map());
  for (const ck of shards) {
    for (const t of ck.tables) {
      for (let r = 0; r < t.rows; r++) {
        const target = targets[shardOfId(t.ids[2 * r]!, t.ids[2 * r + 1]!, count)]!;
        let picks = target.get(t.slot);
        if (!picks) target.set(t.slot, (picks = { layout: t, from: [], rows: [] }));
        if (picks.layout.dim !== t.dim || picks.layout.stateSize !== t.stateSize) {
          throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `slot ${t.slot} has different layouts in different shards`);
        }
        picks.from.push(t);
        picks.rows.push(r);
      }
    }
  }
  return targets.map((m) =>
    [...m.values()].map(({ layout, from, rows }) => {
      const { dim, stateSize } = layout;
      const n = rows.length;
      const ids = new Uint32Array(2 * n);
      const weights = new Float32Array(n * dim);
      const state = new Float32Array(n * stateSize);
      const lastUpdate = new Uint32Array(n);
      rows.forEach((r, k) => {
        const src = from[k]!;
        ids.set(src.ids.subarray(2 * r, 2 * r + 2), 2 * k);
        weights.set(src.weights.subarray(r * dim, (r + 1) * dim), k * dim);
        state.set(src.state.subarray(r * stateSize, (r + 1) * stateSize), k * stateSize);
        lastUpdate[k] = src.lastUpdate[r]!;
      });
      return { slot: layout.slot, dim, rows: n, optimizer: layout.optimizer, stateSize, ids, weights, state, lastUpdate };
    }),
  );
}

/**
 * A sharded checkpoint as a whole: given shard 0's directory (step-N), also
 * reads its siblings step-N.shard-i for every shard it was saved with, and
 * refuses the set if any is missing or fails its checks.
 */
export function loadShardedCheckpoint(dir: string): CheckpointData[] {
  const first = loadCheckpoint(dir);
  const count = first.manifest.shard?.count ?? 1;
  if ((first.manifest.shard?.index ?? 0) !== 0) {
    throw OrchestratorErrors.create("ORCH_ERR_NOT_A_CHECKPOINT", `checkpoint ${dir} is shard ${first.manifest.shard.index}'s part; give shard 0's directory (${dir.replace(/\.shard-\d+$/, "")})`);
  }
  const all = [first];
  for (let i = 1; i < count; i++) {
    // Shard 0 exists, so a missing sibling makes the set incomplete: corrupt, not a wrong path.
    if (!existsSync(`${dir}.shard-${i}`)) throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `checkpoint ${dir} was saved by ${count} shards; ${dir}.shard-${i} is missing (incomplete checkpoint)`);
    const ck = loadCheckpoint(`${dir}.shard-${i}`);
    if (ck.manifest.step !== first.manifest.step || ck.manifest.jobId !== first.manifest.jobId) {
      throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `checkpoint ${dir}.shard-${i} is of step ${ck.manifest.step} of job ${ck.manifest.jobId}, not step ${first.manifest.step} of ${first.manifest.jobId}`);
    }
    // A part copied to another shard's name would load the same rows twice and leave the other shard's out.
    const part = ck.manifest.shard ?? { index: 0, count: 1 };
    if (part.index !== i || part.count !== count) {
      throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `checkpoint ${dir}.shard-${i} holds shard ${part.index} of ${part.count}'s part, not shard ${i} of ${count}'s`);
    }
    all.push(ck);
  }
  return all;
}

/** The step-N directories of shard 0 under root/jobId, oldest first. */
export function listCheckpoints(root: string, jobId: string): { step: number; dir: string }[] {
  const dir = jobCheckpointDir(root, jobId);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => /^step-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/** A checkpoint directory that could not be read, and why. */
export interface UnreadableCheckpoint {
  dir: string;
  reason: string;
  /** Whole, but another job's (its manifest names that job): copied or moved in, not damaged. */
  otherJob?: string;
}

/**
 * Checkpoint directories found unreadable by this process. They are never
 * deleted (pruning skips them) nor overwritten (a save to the same name moves
 * them aside first), so whatever they hold stays for an operator to inspect.
 */
const unreadableDirs = new Set<string>();

/** Every checkpoint directory of the job, any shard (step-N and step-N.shard-i). */
function checkpointDirs(root: string, jobId: string): string[] {
  const dir = jobCheckpointDir(root, jobId);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => /^step-\d+(\.shard-\d+)?$/.test(name))
    .map((name) => join(dir, name));
}

/**
 * Where `--resume` continues from: the newest checkpoint of the job that
 * loads completely (every shard present and intact), skipping newer ones a
 * crash left broken. `from` is null when none does; `unreadable` lists those
 * that failed (so "no checkpoints" and "only broken ones" can be told apart).
 */
export function latestCheckpoint(root: string, jobId: string, log?: (msg: string) => void): { from: CheckpointData[] | null; unreadable: UnreadableCheckpoint[] } {
  const unreadable: UnreadableCheckpoint[] = [];
  const steps = listCheckpoints(root, jobId);
  for (const { dir, step } of [...steps].reverse()) {
    try {
      const from = loadShardedCheckpoint(dir);
      // A directory copied from another job or renamed, or a manifest edited: resuming it would go to another step
      // than its name says (past a newer one) or continue another job. Such a checkpoint is passed over as unreadable.
      const m = from[0]!.manifest;
      const not = m.jobId !== undefined && m.jobId !== jobId ? `of job ${m.jobId}, not ${jobId} (--restore-from it to start a new job from its parameters)` : m.step !== step ? `of step ${m.step}, not ${step} as its directory's name says` : m.training && m.training.step !== step ? `of step ${step}, but its training progress is of step ${m.training.step}` : "";
      if (not) throw Object.assign(new Error(`checkpoint ${dir}: its manifest says it is ${not}`), { otherJob: m.jobId !== jobId ? m.jobId : undefined });
      return { from, unreadable };
    } catch (err) {
      const reason = (err as Error).message;
      const otherJob = (err as { otherJob?: string }).otherJob;
      unreadable.push({ dir, reason, ...(otherJob !== undefined ? { otherJob } : {}) });
      unreadableDirs.add(dir);
      log?.(`skipping ${dir}: ${reason}`);
    }
  }
  // Shard directories whose shard 0 is gone cannot be resumed from either.
  const shard0 = new Set(steps.map((s) => s.dir));
  for (const dir of checkpointDirs(root, jobId)) {
    const m = /^(.*)\.shard-\d+$/.exec(dir);
    if (m && !shard0.has(m[1]!)) unreadable.push({ dir, reason: `checkpoint ${dir}: its shard 0 (${m[1]}) is missing` });
  }
  return { from: null, unreadable };
}

/**
 * Whether a checkpoint directory looks like one of this job's own, whole,
 * without hashing it: a manifest that parses, of this job and of the step its
 * directory's name says, and every file it lists present at its listed size.
 * One of another job or step (copied or renamed in) is what --resume passes
 * over as unreadable: kept for an operator, as a damaged one is.
 */
function looksIntact(dir: string, jobId: string, step: number): boolean {
  if (unreadableDirs.has(dir)) return false;
  try {
    const m = manifestJson(dir) as CheckpointManifest;
    if (m.format !== CHECKPOINT_FORMAT || !m.files) return false;
    if ((m.jobId !== undefined && m.jobId !== jobId) || m.step !== step) return false;
    return Object.entries(m.files).every(([name, f]) => statSync(join(dir, name)).size === f.bytes);
  } catch {
    return false;
  }
}

/**
 * Deletes all but the newest `keep` intact checkpoints of one shard (the
 * directories of shard `index`). A directory that does not look intact is
 * neither counted nor deleted: it may be the only copy of something an
 * operator wants back. The checkpoint of step `kept` (--keep-best's) is
 * neither counted nor deleted either.
 */
export function pruneCheckpoints(root: string, jobId: string, keep: number, index: number, kept: number | null = null): string[] {
  const dir = jobCheckpointDir(root, jobId);
  if (!existsSync(dir)) return [];
  const pattern = index === 0 ? /^step-(\d+)$/ : new RegExp(`^step-(\\d+)\\.shard-${index}$`);
  const found = readdirSync(dir)
    .map((name) => ({ name, m: pattern.exec(name) }))
    .filter((e) => e.m && looksIntact(join(dir, e.name), jobId, Number(e.m[1])))
    .map((e) => ({ name: e.name, step: Number(e.m![1]) }))
    .filter((e) => e.step !== kept)
    .sort((a, b) => a.step - b.step);
  const removed = found.slice(0, Math.max(0, found.length - keep));
  for (const r of removed) rmSync(join(dir, r.name), { recursive: true, force: true });
  return removed.map((r) => join(dir, r.name));
}

/**
 * Removes the parts of shards this job no longer has (`step-N.shard-i`, i >= `psShards`, and their unfinished writes)
 * whose checkpoint shard 0 has pruned: a job resumed on fewer shards would otherwise keep them for ever, as no running
 * shard prunes them. Only steps before `upTo` (the newest whole checkpoint), and none whose step-N was moved aside as
 * unreadable (a part of what an operator may want back). Returns the directories removed.
 */
export function pruneRetiredShardParts(root: string, jobId: string, psShards: number, upTo: number): string[] {
  const dir = jobCheckpointDir(root, jobId);
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir);
  const shard0 = new Set(names.filter((n) => /^step-\d+(\.unreadable-.*)?$/.test(n)).map((n) => Number(/^step-(\d+)/.exec(n)![1])));
  const removed: string[] = [];
  for (const name of names) {
    const m = /^step-(\d+)\.shard-(\d+)(\.tmp-\d+)?$/.exec(name);
    if (!m || Number(m[2]) < psShards || Number(m[1]) >= upTo || shard0.has(Number(m[1]))) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(join(dir, name));
  }
  return removed;
}

/**
 * Removes what writes of shard `index`'s checkpoints left unfinished
 * (`step-N.tmp-PID`, `step-N.shard-i.tmp-PID`: a process killed while it
 * wrote) for steps up to `upTo`, once the checkpoint of `upTo` is whole: a
 * job writes its checkpoints in step order, one at a time, so none of those
 * is still being written. Returns the directories removed.
 */
export function removeUnfinishedWrites(root: string, jobId: string, index: number, upTo: number): string[] {
  const dir = jobCheckpointDir(root, jobId);
  if (!existsSync(dir)) return [];
  const pattern = index === 0 ? /^step-(\d+)\.tmp-\d+$/ : new RegExp(`^step-(\\d+)\\.shard-${index}\\.tmp-\\d+$`);
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const m = pattern.exec(name);
    if (!m || Number(m[1]) > upTo) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(join(dir, name));
  }
  return removed;
}

/**
 * Makes room for this job's checkpoint of `step` at `final`: an intact one of
 * the job and step there is replaced; one that cannot be read, or of another
 * job or step (copied or renamed in), is moved aside
 * (`<name>.unreadable-<time>`), never deleted.
 */
function clearTarget(final: string, jobId: string, step: number): void {
  if (!existsSync(final)) return;
  let intact = !unreadableDirs.has(final);
  if (intact) {
    try {
      const m = loadCheckpoint(final).manifest;
      intact = (m.jobId === undefined || m.jobId === jobId) && m.step === step;
    } catch {
      intact = false;
    }
  }
  if (intact) {
    rmSync(final, { recursive: true, force: true });
    return;
  }
  const aside = `${final}.unreadable-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  renameSync(final, aside);
  unreadableDirs.delete(final);
}
