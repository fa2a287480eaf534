import { createHash, randomBytes } from "node:crypto";
import { closeSync, fstatSync, fsyncSync, mkdtempSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { crc32 } from "node:zlib";
import { makeDirs, processExists, unwritableDirReason } from "@pangea/kit";
import { ComputeErrors } from "../errors.js";
import type { RecordBlock } from "./source.js";
import { stampOf, type FileStamp } from "../formats/data-file.js";

/**
 * Decoded records spilled to disk, so a file source holds a bounded part of
 * its data in memory whatever the input's size. The file is a run of chunks,
 * each a few hundred KB to a few MB of records in TrainingBatch's column
 * layout (labels, weights, dense values, cell starts, ids), then a JSON
 * index (each chunk's first record, offset, length and CRC-32, and what the
 * pass counted), then a 20-byte trailer (the index's offset, length and
 * CRC-32). Records are read back by index, chunk by chunk, through a
 * least-recently-used set of chunks held to a byte limit. Every chunk is
 * checked against its CRC when it is read, and all of them when a cache is
 * reused: a damaged cache is written again, never served.
 */

/** What every record of a cache holds. */
export interface CacheLayout {
  tasks: number;
  dense: number;
  slots: number;
  /** Every cell holds exactly one id (Criteo): cell starts are not stored. */
  fixedCells: boolean;
}

/** What the pass that wrote a cache found, kept with it so a reused cache reports the same. */
export interface CacheSummary {
  records: number;
  /** Bad records (read whole, refused). */
  skippedRecords: number;
  /** Damaged stretches, and their bytes. */
  skippedStretches: number;
  skippedBytes: number;
  skippedSummary: string;
  /** Source-specific counts (e.g. ids of slots the feature list does not configure). */
  extra?: Record<string, number>;
  /** What the pass found worth a warning in the data (a Parquet file of no rows): said again when the cache is reused. */
  warnings?: string[];
}

interface CacheIndex extends CacheSummary {
  version: number;
  layout: CacheLayout;
  /** Ids each slot holds over every record, in slot order (absent for fixed cells, where each holds one, and in older caches). */
  slotIdCounts?: number[];
  /** Records whose dense value is not 0, per dense column (absent in older caches). */
  denseNonzeroCounts?: number[];
  /** [first record, byte offset, byte length, CRC-32 of those bytes] of each chunk. */
  chunks: [number, number, number, number][];
}

const MAGIC = 0x32434750; // "PGC2"
/** Version 1's magic, also the file's last 4 bytes: such a cache is of an older layout, not damaged. */
const MAGIC_V1 = 0x31434750; // "PGC1"
/** The file's layout: 2 added the chunks' and the index's checksums (a cache of version 1 is written again). */
const VERSION = 2;
/**
 * What the cache's records mean: raise it whenever decoding changes (feature
 * hashing, a format's parsing, label or weight rules), so caches written by
 * an older compute, whose ids would differ, are not reused after an upgrade.
 */
// 2: Parquet's stricter rules (bce labels 0 or 1, no text as dense values, nulls in a slot's list, schema checks).
const DECODER_VERSION = 2;
/** A temporary file untouched this long belongs to a pass that is gone, even when its pid is alive again (pid 1 in containers). */
const STALE_TMP_MS = 10 * 60_000;
const CHUNK_HEADER = 16;
const TRAILER = 20;

/** How a memory budget is shared: chunk size and the read set's limit, in bytes. */
export function cacheSizes(memoryMb: number): { chunkBytes: number; residentBytes: number } {
  const budget = memoryMb * 1024 * 1024;
  return {
    chunkBytes: Math.max(64 << 10, Math.min(4 << 20, Math.floor(budget / 64))),
    // An eighth: the rest of the budget is the pass's window and chunk, and the garbage reading makes before it is collected.
    residentBytes: Math.max(256 << 10, Math.floor(budget / 8)),
  };
}

/**
 * How a pass with `threads` parse threads cuts its input: pieces of
 * `pieceBytes`, at most `queued` of them waiting for a worker or to be
 * merged. A piece's decoded records take up to about twice its bytes (a
 * Criteo line of ~250 bytes becomes 264; a Monolith record's ids, cells and
 * dense values about as much again), so the pieces in flight hold at most
 * 3 x queued x pieceBytes: a sixteenth of the budget, or 3 x queued x 64 KiB
 * when that is more (many threads, a small budget). One thread parses each
 * piece as it is cut: nothing waits.
 */
export function parseSizes(memoryMb: number, threads: number): { pieceBytes: number; queued: number } {
  const queued = threads > 1 ? 2 * threads : 0;
  const budget = memoryMb * 1024 * 1024;
  return { pieceBytes: Math.max(64 << 10, Math.min(1 << 20, Math.floor(budget / 16 / (3 * Math.max(1, queued))))), queued };
}

/**
 * What a parse worker holds of its own, in MiB: its V8 heap (young
 * generation capped at 8 MiB), the decoders' code and modules, measured at
 * 25-35 MiB per worker during a pass.
 */
export const PARSE_WORKER_MB = 40;

/**
 * The parse threads compute asks its file sources for: --parse-threads, but
 * no more workers than a quarter of the budget pays for (PARSE_WORKER_MB
 * each), so the workers' own memory keeps within --max-memory-mb; 1 (the
 * pass's own thread) when fewer than 2 fit (a budget under 320 MiB).
 */
export function affordableParseThreads(threads: number, memoryMb: number): number {
  const workers = Math.min(threads, Math.floor(memoryMb / 4 / PARSE_WORKER_MB));
  return workers < 2 ? 1 : workers;
}

/** The parse threads a pass over `paths` uses: 1 when they hold no more than one piece (starting workers would cost more than it saves). */
export function passThreads(paths: readonly string[], threads: number, memoryMb: number): number {
  if (threads <= 1) return 1;
  let bytes = 0;
  for (const p of paths) {
    try {
      bytes += statSync(p).size;
    } catch {
      // Reported, with its path, when the pass opens it.
    }
  }
  return bytes <= parseSizes(memoryMb, threads).pieceBytes ? 1 : threads;
}

/** Writes a cache to a temporary file; `finish` renames it into place, so a pass killed midway leaves nothing that is trusted. */
export class CacheWriter {
  private readonly fd: number;
  private readonly tmp: string;
  private closed = false;
  private offset = 0;
  private records = 0;
  /** CRC-32 of the chunk being written, so far. */
  private crc = 0;
  private readonly chunks: [number, number, number, number][] = [];
  private readonly header = new Uint32Array(4);
  /** Ids per slot so far, counted as chunks go by (the index keeps them: a slot no record fills is worth a warning). */
  private readonly slotIdCounts: number[] | null;
  /** Records whose dense value is not 0, per dense column: a dense feature 0 in every record is worth a warning too. */
  private readonly denseNonzeroCounts: number[];

  constructor(
    private readonly path: string,
    private readonly layout: CacheLayout,
  ) {
    this.slotIdCounts = layout.fixedCells ? null : new Array<number>(layout.slots).fill(0);
    this.denseNonzeroCounts = new Array<number>(layout.dense).fill(0);
    // The pid says whose it is; the random part keeps two computes sharing the directory apart (both pid 1 in containers).
    this.tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    this.fd = openSync(this.tmp, "w");
  }

  /** Appends n records: labels [n*T], weights [n] (null: all 1), dense [n*D], cellStarts [n*S+1] relative to ids (null when fixedCells), ids [2*nnz]. */
  chunk(n: number, labels: Float32Array, weights: Float32Array | null, dense: Float32Array, cellStarts: Uint32Array | null, ids: Uint32Array): void {
    if (n === 0) return;
    const { tasks: T, dense: D, slots: S, fixedCells } = this.layout;
    const nnz = fixedCells ? n * S : cellStarts![n * S]!;
    const start = this.offset;
    this.crc = 0;
    this.header[0] = n;
    this.header[1] = nnz;
    this.put(this.header);
    this.put(labels.subarray(0, n * T));
    this.put(weights ? weights.subarray(0, n) : new Float32Array(n).fill(1));
    this.put(dense.subarray(0, n * D));
    const nonzero = this.denseNonzeroCounts;
    for (let i = 0; i < n * D; i++) if (dense[i] !== 0) nonzero[i % D]!++;
    if (!fixedCells) {
      this.put(cellStarts!.subarray(0, n * S + 1));
      const counts = this.slotIdCounts!;
      for (let r = 0, i = 0; r < n; r++) for (let c = 0; c < S; c++, i++) counts[c]! += cellStarts![i + 1]! - cellStarts![i]!;
    }
    this.put(ids.subarray(0, nnz * 2));
    this.chunks.push([this.records, start, this.offset - start, this.crc]);
    this.records += n;
  }

  private put(a: Float32Array | Uint32Array): void {
    const b = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    let done = 0;
    while (done < b.length) done += writeSync(this.fd, b, done, b.length - done, this.offset + done);
    this.offset += b.length;
    this.crc = crc32(b, this.crc);
  }

  /** Writes the index and trailer, and renames the file into place. */
  finish(summary: CacheSummary): void {
    const index: CacheIndex = { ...summary, version: VERSION, layout: this.layout, chunks: this.chunks, ...(this.slotIdCounts ? { slotIdCounts: this.slotIdCounts } : {}), denseNonzeroCounts: this.denseNonzeroCounts };
    const json = Buffer.from(JSON.stringify(index));
    const at = this.offset;
    writeSync(this.fd, json, 0, json.length, at);
    const trailer = Buffer.alloc(TRAILER);
    trailer.writeDoubleLE(at, 0);
    trailer.writeUInt32LE(json.length, 8);
    trailer.writeUInt32LE(crc32(json), 12);
    trailer.writeUInt32LE(MAGIC, 16);
    writeSync(this.fd, trailer, 0, TRAILER, at + json.length);
    // On disk before it is renamed into place: a power loss then leaves a whole cache or none (once per cache).
    fsyncSync(this.fd);
    this.close();
    renameSync(this.tmp, this.path);
  }

  /** Gives the pass up: the temporary file goes, whatever state finishing left it in. */
  abort(): void {
    try {
      this.close();
    } finally {
      rmSync(this.tmp, { force: true });
    }
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

interface Chunk {
  n: number;
  nnz: number;
  labels: Float32Array;
  weights: Float32Array;
  dense: Float32Array;
  cellStarts: Uint32Array | null;
  ids: Uint32Array;
  buffer: ArrayBuffer;
}

/** What looking for a cache found: the cache, or null with why a cache there is not used (null: none there, or of another version or layout). */
export interface FoundCache {
  cache: RecordCache | null;
  damage: string | null;
}

/** A finished cache, read by record index. */
export class RecordCache {
  private readonly resident = new Map<number, Chunk>();
  private readonly firsts: Float64Array;
  /** Chunks held at once, and the size of each one's buffer. */
  private readonly slots: number;
  private readonly slotBytes: number;
  /** Where it is and whether this process found it written, for the source's description. */
  note = "";
  /** Why a cache found at this path was not used and this one was written instead, or "". */
  warning = "";

  private constructor(
    private readonly path: string,
    private readonly fd: number,
    readonly index: CacheIndex,
    private readonly limitBytes: number,
  ) {
    this.firsts = Float64Array.from(index.chunks, (c) => c[0]);
    this.slotBytes = index.chunks.reduce((m, c) => Math.max(m, c[2]), 0);
    // Two at least: a batch spans two chunks when it straddles a boundary.
    this.slots = Math.max(2, Math.floor(limitBytes / Math.max(1, this.slotBytes)));
  }

  /**
   * The cache at `path` when it is complete and of this layout, or what is
   * damaged in its trailer or index. Its chunks are not read here (a cache
   * of many gigabytes would hold up a restarted compute for as long): each is
   * checked against its CRC when it is read.
   */
  static open(path: string, layout: CacheLayout, limitBytes: number): FoundCache {
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch {
      return { cache: null, damage: null };
    }
    let cache: RecordCache | null = null;
    try {
      const size = fstatSync(fd).size;
      // Too short for a trailer: cut short (a finished cache is renamed into place whole, so not a pass killed as it wrote).
      if (size < TRAILER) return damaged(fd, `it is ${size} bytes, shorter than its trailer`);
      const trailer = Buffer.alloc(TRAILER);
      readFully(fd, trailer, size - TRAILER);
      // A cache of version 1 (no checksums; its magic also ends the file) is written again without a word; any other end was cut off.
      const magic = trailer.readUInt32LE(16);
      if (magic === MAGIC_V1) throw new Error("an older layout");
      if (magic !== MAGIC) return damaged(fd, `it does not end with its trailer (${size} bytes: cut short or overwritten)`);
      const at = trailer.readDoubleLE(0);
      const len = trailer.readUInt32LE(8);
      if (!Number.isSafeInteger(at) || at < 0 || at + len + TRAILER !== size) return damaged(fd, `its index's place (byte ${at}, ${len} bytes) does not fit the file's ${size} bytes`);
      const json = Buffer.alloc(len);
      readFully(fd, json, at);
      if (crc32(json) !== trailer.readUInt32LE(12)) return damaged(fd, `its index (bytes ${at}..${at + len}) fails its checksum`);
      const index = JSON.parse(json.toString()) as CacheIndex;
      // A cache whose summary predates counting stretches apart (its skippedRecords holds both) is written again too.
      if (index.version !== VERSION || JSON.stringify(index.layout) !== JSON.stringify(layout) || index.skippedStretches === undefined) throw new Error("layout");
      cache = new RecordCache(path, fd, index, limitBytes);
    } catch {
      closeSync(fd);
      return { cache: null, damage: null };
    }
    return { cache, damage: null };
  }

  /** Fills `bytes` from `offset`; false when the file ends first. */
  private readChunkBytes(bytes: Uint8Array, offset: number): boolean {
    let got = 0;
    while (got < bytes.length) {
      const n = readSync(this.fd, bytes, got, bytes.length - got, offset + got);
      if (n === 0) return false;
      got += n;
    }
    return true;
  }

  get records(): number {
    return this.index.records;
  }

  /** Fills `block` with records [base, base + count). */
  read(base: number, count: number, block: RecordBlock): void {
    const { tasks: T, dense: D, slots: S, fixedCells } = this.index.layout;
    let k = this.chunkOf(base);
    let done = 0;
    let nnz = 0;
    while (done < count) {
      const first = this.index.chunks[k]![0];
      const c = this.chunk(k);
      const from = base + done - first;
      const take = Math.min(count - done, c.n - from);
      block.labels.set(c.labels.subarray(from * T, (from + take) * T), done * T);
      block.weights.set(c.weights.subarray(from, from + take), done);
      block.dense.set(c.dense.subarray(from * D, (from + take) * D), done * D);
      const idFrom = fixedCells ? from * S : c.cellStarts![from * S]!;
      const idTo = fixedCells ? (from + take) * S : c.cellStarts![(from + take) * S]!;
      const need = (nnz + idTo - idFrom) * 2;
      if (block.idWords.length < need) {
        const grown = new Uint32Array(Math.max(need, block.idWords.length * 2));
        grown.set(block.idWords.subarray(0, nnz * 2));
        block.idWords = grown;
      }
      block.idWords.set(c.ids.subarray(idFrom * 2, idTo * 2), nnz * 2);
      const shift = nnz - idFrom;
      for (let i = 0; i < take * S; i++) block.cellOffsets[done * S + i] = (fixedCells ? from * S + i : c.cellStarts![from * S + i]!) + shift;
      nnz += idTo - idFrom;
      done += take;
      k++;
    }
    block.cellOffsets[count * S] = nnz;
    block.count = count;
    block.nnz = nnz;
  }

  private chunkOf(record: number): number {
    let lo = 0;
    let hi = this.firsts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.firsts[mid]! <= record) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private chunk(k: number): Chunk {
    const hit = this.resident.get(k);
    if (hit) {
      // Most recently used last.
      this.resident.delete(k);
      this.resident.set(k, hit);
      return hit;
    }
    const [, offset, length, crc] = this.index.chunks[k]!;
    // A fixed set of buffers, each the largest chunk's size, reused as chunks are evicted: reading
    // makes no garbage, so what compute holds stays the set, not whatever the collector has not freed yet.
    let buf: ArrayBuffer;
    if (this.resident.size < this.slots) buf = new ArrayBuffer(this.slotBytes);
    else {
      const [oldest, old] = this.resident.entries().next().value as [number, Chunk];
      this.resident.delete(oldest);
      buf = old.buffer;
    }
    const bytes = new Uint8Array(buf, 0, length);
    let whole: boolean;
    try {
      whole = this.readChunkBytes(bytes, offset);
    } catch (err) {
      throw this.corrupt(`chunk ${k} at byte ${offset} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (!whole) throw this.corrupt(`ends inside chunk ${k} (bytes ${offset}..${offset + length})`);
    if (crc32(bytes) !== crc) throw this.corrupt(`chunk ${k} at byte ${offset} (${length} bytes) fails its checksum`);
    const { tasks: T, dense: D, slots: S, fixedCells } = this.index.layout;
    const head = new Uint32Array(buf, 0, 4);
    const n = head[0]!;
    const nnz = head[1]!;
    let at = CHUNK_HEADER;
    const f32 = (len: number) => {
      const a = new Float32Array(buf, at, len);
      at += len * 4;
      return a;
    };
    const u32 = (len: number) => {
      const a = new Uint32Array(buf, at, len);
      at += len * 4;
      return a;
    };
    const c: Chunk = { n, nnz, labels: f32(n * T), weights: f32(n), dense: f32(n * D), cellStarts: fixedCells ? null : u32(n * S + 1), ids: u32(nnz * 2), buffer: buf };
    this.resident.set(k, c);
    return c;
  }

  /**
   * The cache was damaged on disk after it was written: the process cannot
   * serve its records. The file is removed, so a compute started again
   * writes it anew from the data files instead of meeting the same damage.
   */
  private corrupt(what: string): Error {
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone (a private spill file is unlinked once open), or not ours to remove: the error says what to do.
    }
    return ComputeErrors.create("COMPUTE_ERR_CACHE_CORRUPT", `record cache ${this.path} ${what}: it was damaged after it was written, and is removed`, { hint: "start compute again: it writes the cache anew from the data files" });
  }

  close(): void {
    closeSync(this.fd);
  }
}

function readFully(fd: number, into: Buffer, at: number): void {
  let got = 0;
  while (got < into.length) {
    const n = readSync(fd, into, got, into.length - got, at + got);
    if (n === 0) throw new Error("short");
    got += n;
  }
}

function damaged(fd: number, why: string): FoundCache {
  closeSync(fd);
  return { cache: null, damage: why };
}

/** Where a source's cache lives, and whether it outlives the process. */
export interface CachePlace {
  /** The cache's file. */
  path: string;
  /** Kept for a restarted compute to reuse; false: a private spill file, deleted once open. */
  kept: boolean;
  /** Each input's size and time as the cache's name records them, by path as given: the pass checks each file it opens against them. */
  stamps: ReadonlyMap<string, FileStamp>;
}

/**
 * The cache file for these inputs read this way. Its name is a hash of the
 * paths and decoding (`decodeKey`: format, framing, compression, feature
 * list, bad-record policy) and of each file's size and modification time,
 * so a changed file gets a new cache and a restarted compute reuses an
 * unchanged one. Caches of the same paths read the same way but of older
 * contents are deleted. `dir` null: beside the first file (.pangea-cache),
 * or, when that cannot be written, a private spill file in the system's
 * temporary directory.
 */
export function placeCache(paths: readonly string[], decodeKey: string, dir: string | null): CachePlace {
  const stamps = new Map<string, FileStamp>();
  const files = paths.map((p) => {
    try {
      const stamp = stampOf(statSync(p));
      stamps.set(p, stamp);
      // Size and time name the contents; the inode does not (a moved data set reuses its cache).
      return { path: resolve(p), size: stamp.size, mtimeMs: stamp.mtimeMs };
    } catch (err) {
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot read data file ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  });
  const hash = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 16);
  const what = hash(JSON.stringify({ decodeKey, decoder: DECODER_VERSION, paths: files.map((f) => f.path) }));
  const name = `${what}-${hash(JSON.stringify({ decodeKey, files }))}.records`;
  const target = dir ?? join(dirname(files[0]!.path), ".pangea-cache");
  try {
    makeDirs(target);
    // An existing directory may still be read-only (data mounted so): then it is as good as absent. It is tried (an entry
    // made and removed) rather than its permission bits read: root passes every access check, also where nothing can be made.
    const problem = unwritableDirReason(target);
    if (problem) throw new Error(problem);
    pruneStale(target, what, name);
    return { path: join(target, name), kept: true, stamps };
  } catch (err) {
    if (dir !== null) throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `--cache-dir ${dir}: cannot write there: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return { path: join(mkdtempSync(join(tmpdir(), "pangea-spill-")), name), kept: false, stamps };
  }
}

/** Deletes older caches of the same inputs, and temporary files of passes whose process is gone. */
function pruneStale(dir: string, what: string, keep: string): void {
  for (const f of readdirSync(dir)) {
    if (!f.startsWith(`${what}-`) || f === keep) continue;
    const tmp = /\.tmp-(\d+)(-[0-9a-f]+)?$/.exec(f);
    if (tmp && processExists(Number(tmp[1])) && !untouchedFor(join(dir, f), STALE_TMP_MS)) continue;
    try {
      unlinkSync(join(dir, f));
    } catch {
      // Another compute pruned it first.
    }
  }
}

function untouchedFor(path: string, ms: number): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs > ms;
  } catch {
    return false;
  }
}

/**
 * The cache for these inputs: reused when a complete one is there, else
 * written by `build` (one pass over the inputs) and then opened. A private
 * spill file is unlinked once open (the open descriptor keeps it readable).
 */
export async function openOrBuild(place: CachePlace, layout: CacheLayout, memoryMb: number, build: (w: CacheWriter) => Promise<CacheSummary>): Promise<RecordCache> {
  const found = RecordCache.open(place.path, layout, cacheSizes(memoryMb).residentBytes);
  if (found.cache) {
    found.cache.note = `record cache reused: ${place.path}`;
    return found.cache;
  }
  let w: CacheWriter;
  try {
    w = new CacheWriter(place.path, layout);
  } catch (err) {
    throw cannotWrite(place, err);
  }
  let summary: CacheSummary;
  try {
    summary = await build(w);
  } catch (err) {
    abandon(place, w);
    throw cannotWrite(place, err);
  }
  try {
    const cache = complete(place, layout, memoryMb, w, summary);
    if (found.damage) cache.warning = `record cache ${place.path} was damaged (${found.damage}): written again from the data files`;
    return cache;
  } catch (err) {
    abandon(place, w);
    throw cannotWrite(place, err);
  }
}

/** A file-system failure of the cache's own (ENOSPC, EACCES) as one line naming it; the source's errors as they are. */
function cannotWrite(place: CachePlace, err: unknown): unknown {
  if (ComputeErrors.is(err) || !(err as NodeJS.ErrnoException).code) return err;
  return ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot write the record cache ${place.path}: ${(err as NodeJS.ErrnoException).code} (give --cache-dir a directory with room for the decoded records)`);
}

function abandon(place: CachePlace, w: CacheWriter): void {
  try {
    w.abort();
  } catch {
    // The descriptor could not be closed; the temporary file is gone all the same.
  }
  if (!place.kept) rmSync(dirname(place.path), { recursive: true, force: true });
}

function complete(place: CachePlace, layout: CacheLayout, memoryMb: number, w: CacheWriter, summary: CacheSummary): RecordCache {
  w.finish(summary);
  const { cache, damage } = RecordCache.open(place.path, layout, cacheSizes(memoryMb).residentBytes);
  if (!place.kept) rmSync(dirname(place.path), { recursive: true, force: true });
  if (!cache) throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `record cache ${basename(place.path)} could not be read back after writing${damage ? `: ${damage}` : ""}`);
  cache.note = place.kept ? `record cache written: ${place.path}` : "records spilled to a private temporary file (no writable cache directory)";
  return cache;
}
