import { closeSync, createReadStream, openSync, read as readAt, readSync, statSync, type ReadStream } from "node:fs";
import { promisify } from "node:util";
import zlib from "node:zlib";
import { Decompress as ZstdStream } from "fzstd";
import type { XXHash } from "xxhash-wasm";
import { compressionFromMagic, compressionFromName, hasParquetMagic, NAME_ENDING, type Compression } from "./compression.js";
import { SnappyBlockStream } from "./snappy-stream.js";
import { openDataFile, type FileStamp } from "./data-file.js";
import { ComputeErrors } from "../errors.js";
import { ZstdFrames } from "./zstd-frames.js";
import { xxhash64 } from "./xxhash64.js";


/** zlib's messages for a damaged gzip or zlib header (of a later member too): met before the member gives output. */
const ZLIB_HEADER_ERRORS = new Set(["incorrect header check", "unknown compression method", "invalid window size", "unknown header flags set", "header crc mismatch"]);

/** fzstd's error code for input that ends inside a frame. */
const FZSTD_UNEXPECTED_EOF = 5;

/** Compressed bytes read from a file per step: small, so a piece's decompressed size stays a few MB whatever the ratio. */
const READ_STEP = 1 << 16;

/**
 * The damage a stream ran into: the file ended inside a compressed member, a
 * member does not decompress, or the file is shorter than it was when the
 * pass began. The pieces before it are good; nothing after it can be read.
 */
export interface StreamDamage {
  /** Byte offset in the file (compressed) where reading failed. */
  fileOffset: number;
  /** Decompressed bytes produced before the failure. */
  outputOffset: number;
  message: string;
  /** The damage lies after the file's whole compressed data (trailing garbage): every record was read. */
  afterData: boolean;
  /**
   * The compressed data is damaged, not cut short: the decompressor may have given wrong bytes before it noticed (a
   * member's or frame's checksum is checked at its end), so what did not parse before here may be that wrong output.
   */
  wrongOutput: boolean;
}

/** Bytes after a whole compressed stream that do not start another: gzip(1) ignores them, and nothing decompressed is lost. */
class TrailingGarbage extends Error {}

interface Inflated {
  /** What `input` decompressed to, up to any damage. */
  out: Uint8Array[];
  /** The damage met in `input`, after `out`, or null. */
  error: Error | null;
  /** Where in the compressed input the damage is, when the decompressor knows (zlib's input consumed); else the start of the piece it was in. */
  errorAt?: number;
  /** The error is damaged data (see StreamDamage.wrongOutput), not data cut short. */
  wrongOutput?: boolean;
}

interface Inflater {
  /** Decompressed bytes of `input`; `last` marks the file's final piece. */
  push(input: Uint8Array, last: boolean): Inflated | Promise<Inflated>;
  close?(): void;
}

/**
 * A file read in order, a piece at a time, decompressed on the way (gzip
 * and zlib on libuv's threads), so that what a pass over a file holds does
 * not grow with the file. Every decompressor is fed one piece of the file
 * at a time and gives all it decompressed from it before the next is read,
 * so where damage stops a stream, and what it gave before, does not depend
 * on how fast the pass consumes it.
 */
export class ByteStream {
  /** The file's size when the stream was opened. */
  readonly size: number;
  readonly mtimeMs: number;
  damage: StreamDamage | null = null;
  private readonly raw: ReadStream;
  private readonly pieces: AsyncIterator<Uint8Array>;
  /** zstd and snappy decode here, on pieces of the file. */
  private readonly inflater: Inflater | null;
  private outputOffset = 0;
  /** Bytes of the file handed to the decompressor so far: where the next piece starts. */
  private fed = 0;
  private pending: Uint8Array[] = [];
  private done = false;
  /** Damage met while decompressing, reported once what came before it is handed out. */
  private damageAhead: { fileOffset: number; message: string; afterData: boolean; wrongOutput: boolean } | null = null;

  /** How the file is decompressed: --compression, or under auto what the file's name says. */
  readonly compression: Compression;
  /** A regular file: a pipe's size and time say nothing about what it holds, so they are not compared. */
  private readonly regular: boolean;
  private readonly ino: number;

  /** `expected`: the file's size and time as compute recorded them at its start, checked on the file opened (see openDataFile). */
  constructor(
    readonly path: string,
    compression: Compression | "auto",
    expected: FileStamp | null = null,
  ) {
    const { fd, stamp } = openDataFile(path, expected);
    this.compression = compression === "auto" ? compressionFromName(path) : compression;
    // Only for a name that said "none": --compression none is the way to read such a file as it is.
    if (compression === "auto" && this.compression === "none" && stamp.regular) refuseMisread(path, fd);
    if ((this.compression === "gzip" || this.compression === "zstd") && stamp.regular && stamp.size > 0) refuseNotCompressed(path, fd, this.compression, compression === "auto");
    this.size = stamp.size;
    this.mtimeMs = stamp.mtimeMs;
    this.ino = stamp.ino;
    this.regular = stamp.regular;
    this.raw = createReadStream("", { fd, highWaterMark: READ_STEP });
    this.pieces = this.raw[Symbol.asyncIterator]();
    // A regular file can be opened again (the same file, checked) to recover what gunzip drops at trailing garbage.
    const reopen = stamp.regular ? () => openDataFile(path, stamp).fd : null;
    // An empty file is no damaged stream whatever its name says (gunzip calls it an unexpected end): it holds nothing.
    this.inflater = this.compression === "none" || (stamp.regular && stamp.size === 0) ? null : inflaterFor(this.compression, reopen);
  }

  /** The next decompressed piece, or null at the end (or at damage: see `damage`). */
  async next(): Promise<Uint8Array | null> {
    while (this.pending.length === 0) {
      if (this.damageAhead) {
        this.fail(this.damageAhead.fileOffset, this.damageAhead.message, this.damageAhead.afterData, this.damageAhead.wrongOutput);
        this.damageAhead = null;
        return null;
      }
      if (this.done) return null;
      let r: IteratorResult<Uint8Array>;
      try {
        r = await this.pieces.next();
      } catch (err) {
        this.fail(this.fed, `cannot read the file: ${(err as Error).message}`);
        return null;
      }
      const last = r.done === true;
      if (last) {
        this.done = true;
        if (this.raw.bytesRead < this.size) {
          this.fail(this.raw.bytesRead, `reading ended at byte ${this.raw.bytesRead}, but the file was ${this.size} bytes when it began (it shrank while being read)`);
          return null;
        }
      }
      if (!this.inflater) {
        if (!last && r.value.length > 0) this.pending.push(r.value);
        if (!last) this.fed += r.value.length;
        continue;
      }
      const input = last ? new Uint8Array(0) : r.value;
      const pieceAt = this.fed;
      this.fed += input.length;
      const { out, error, errorAt, wrongOutput } = await this.inflater.push(input, last);
      this.pending = out.filter((p) => p.length > 0);
      if (error) {
        this.done = true;
        // Not how far the file was read: the read stream reads ahead of the piece being decompressed.
        this.damageAhead = { fileOffset: errorAt ?? pieceAt, message: `cannot ${this.compression}-decompress: ${error.message}`, afterData: error instanceof TrailingGarbage, wrongOutput: wrongOutput === true };
      }
    }
    const p = this.pending.shift()!;
    this.outputOffset += p.length;
    return p;
  }

  private fail(fileOffset: number, message: string, afterData = false, wrongOutput = false): void {
    this.done = true;
    this.pending = [];
    // Wrong output needs output: damage met before any (a damaged header) gave none.
    this.damage = { fileOffset, outputOffset: this.outputOffset, message, afterData, wrongOutput: wrongOutput && this.outputOffset > 0 };
  }

  /**
   * How the file is no longer what the pass read, or null. `rewritten`: other
   * bytes in place (same or larger size, a later time): the records read are
   * part old, part new. Otherwise it shrank or disappeared: what was read
   * before the cut is the file's, and the rest is damage under the
   * --on-bad-record policy.
   */
  changed(): { message: string; rewritten: boolean } | null {
    if (!this.regular) return null;
    let st;
    try {
      st = statSync(this.path);
    } catch (err) {
      return { message: `the file disappeared while being read (${(err as NodeJS.ErrnoException).code})`, rewritten: false };
    }
    if (st.ino !== this.ino) return { message: "another file took its name while it was read (it was replaced)", rewritten: true };
    if (st.size < this.size) return { message: `the file shrank while being read (${this.size} bytes at the start, ${st.size} at the end)`, rewritten: false };
    if (st.size !== this.size) return { message: `${this.size} bytes when its pass opened it, ${st.size} at its end`, rewritten: true };
    if (st.mtimeMs !== this.mtimeMs) return { message: `modified at ${new Date(this.mtimeMs).toISOString()} when its pass opened it, at ${new Date(st.mtimeMs).toISOString()} at its end (same size)`, rewritten: true };
    return null;
  }

  /**
   * Throws COMPUTE_ERR_DATA_CHANGED when the file was rewritten while its
   * pass read it, whatever --on-bad-record says: its records would be part
   * old, part new, cached under the old file's key, and no byte range of it
   * is "the damage" to skip. Called when the pass ends and when it fails (the
   * rewrite explains the damage it caused better than the damage).
   */
  assertNotRewritten(): void {
    const change = this.changed();
    if (change?.rewritten) throw ComputeErrors.create("COMPUTE_ERR_DATA_CHANGED", `data file ${this.path} changed while its pass read it: ${change.message}`, { hint: "start compute again once the files are complete" });
  }

  close(): void {
    this.raw.destroy();
    this.inflater?.close?.();
  }
}

function inflaterFor(kind: Exclude<Compression, "none">, reopen: (() => number) | null): Inflater {
  switch (kind) {
    case "gzip":
    case "zlib": {
      // Node's zlib stream (on libuv's threads), written a piece at a time: each write's output is in `out` when its callback runs.
      // Zero padding after the compressed data (and, for zlib, any bytes) ends its output early, as gzip(1) ignores
      // trailing garbage: from then on a piece is answered at once, with nothing.
      const z = kind === "gzip" ? zlib.createGunzip() : zlib.createInflate();
      const out: Uint8Array[] = [];
      let failure: Error | null = null;
      /** zlib's Z_DATA_ERROR: damaged deflate data or a failing checksum, not data cut short (Z_BUF_ERROR). */
      let damaged = false;
      let ended = false;
      let produced = 0;
      z.on("data", (d: Buffer) => {
        produced += d.length;
        out.push(d);
      });
      z.on("error", (err: NodeJS.ErrnoException) => {
        // Node's gunzip takes non-zero bytes after a member for the next member's header: trailing garbage, which
        // gzip(1) warns of and ignores, fails here, and the last output of the piece holding it is lost with it.
        failure =
          kind === "gzip" && produced > 0 && err.message === "incorrect header check"
            ? new TrailingGarbage(`bytes after a whole gzip member are not another member (trailing garbage, which gzip(1) ignores; rewrite the file without it, e.g. gzip -dc FILE | gzip > NEW.gz)`)
            : err.message === "incorrect data check"
              ? // The checksum is checked at the data's end: the damage, wherever it is, gave wrong output that was read on.
                new Error(`incorrect data check: the data's checksum fails, so the records read from it before here may hold wrong bytes`)
              : err;
        // A damaged member header stops before any of the member's output: nothing wrong was given.
        damaged = !(failure instanceof TrailingGarbage) && err.code === "Z_DATA_ERROR" && !ZLIB_HEADER_ERRORS.has(err.message);
      });
      z.on("end", () => (ended = true));
      let fed = 0;
      return {
        push: async (input, last) => {
          const pieceAt = fed;
          fed += input.length;
          if (!ended && !failure) {
            await new Promise<void>((resolve) => {
              const done = () => {
                z.off("error", done);
                z.off("end", done);
                resolve();
              };
              z.once("error", done);
              z.once("end", done);
              if (last) z.end();
              else z.write(input, () => done());
            });
          }
          if (failure instanceof TrailingGarbage && reopen) {
            const tail = await gunzipTail(reopen, pieceAt, input, produced).catch(() => null);
            if (tail) return { out: [...out.splice(0), ...tail.out], error: failure, errorAt: tail.garbageAt };
          }
          // Garbage whose dropped output was not recovered (a pipe cannot be read again) may have cost the member's last records.
          const error = failure instanceof TrailingGarbage ? new Error(failure.message) : failure;
          // zlib's bytesWritten: the input it consumed before the damage, counted from the file's first byte.
          return { out: out.splice(0), error, ...(failure ? { errorAt: z.bytesWritten, wrongOutput: damaged } : {}) };
        },
        close: () => z.destroy(),
      };
    }
    case "zstd": {
      const out: Uint8Array[] = [];
      // fzstd does not check a frame's content checksum: it is fed a frame at a time (the walker finds where each ends,
      // and fzstd gives a frame's last bytes once its end is pushed), and what the frame decoded to is hashed here.
      const frames = new ZstdFrames();
      let hash: XXHash<bigint> | null = null;
      let fed = 0;
      // fzstd reuses its window: each piece is copied out. A frame cut short throws "unexpected EOF" at the last push.
      const z = new ZstdStream((d) => {
        const piece = d.slice();
        out.push(piece);
        hash?.update(piece);
      });
      return {
        push: async (input, last) => {
          const xxh = await xxhash64();
          hash ??= xxh.create64(0n);
          const pieceAt = fed;
          fed += input.length;
          let from = 0;
          try {
            for (const end of frames.feed(input)) {
              z.push(input.subarray(from, end.at));
              from = end.at;
              const sum = Number(hash.digest() & 0xffffffffn);
              hash = xxh.create64(0n);
              if (end.checksum !== null && sum !== end.checksum) {
                const at = pieceAt + end.at;
                return { out: out.splice(0), error: new Error(`the frame at bytes ${end.start}-${at - 1} decodes to data whose checksum (XXH64) is not the frame's: its compressed blocks are damaged, and the records read from it may hold wrong bytes`), errorAt: at - 4, wrongOutput: true };
              }
            }
            z.push(input.subarray(from), last);
            return { out: out.splice(0), error: null };
          } catch (err) {
            // fzstd's codes: 5 is "unexpected EOF" (a frame cut short); the others are damaged blocks, decoded until noticed.
            return { out: out.splice(0), error: err as Error, wrongOutput: (err as { code?: unknown }).code !== FZSTD_UNEXPECTED_EOF };
          }
        },
      };
    }
    case "snappy": {
      const s = new SnappyBlockStream();
      return {
        push: (input, last) => {
          try {
            return { out: s.push(input, last), error: null };
          } catch (err) {
            return { out: [], error: err as Error };
          }
        },
      };
    }
  }
}

const readFileAt = promisify(readAt);

/**
 * What Node's gunzip dropped at trailing garbage: it takes non-zero bytes
 * after a member for the next member's header and, when that fails, discards
 * what the write holding them had decompressed (up to 16 KiB of the member's
 * end). The file (opened again: the same file, or an error) is decompressed
 * again up to the failing piece, then in small writes to find the one that
 * meets the garbage, then again with a byte per write from there, so that
 * write holds no output: gives the output past `produced` and where the
 * garbage starts, or null if a pass does not meet it there. Only at this
 * damage, once per file: two more passes over the file's start.
 */
async function gunzipTail(reopen: () => number, pieceAt: number, piece: Uint8Array, produced: number): Promise<{ out: Uint8Array[]; garbageAt: number } | null> {
  const fd = reopen();
  try {
    const coarse = await gunzipUntilFailure(fd, pieceAt, piece, pieceAt, 256, produced);
    if (!coarse) return null;
    const fine = await gunzipUntilFailure(fd, pieceAt, piece, coarse.failedAt, 1, produced);
    // The header check fails at the garbage's second byte (gunzip reads two for the magic).
    return fine && fine.total >= produced ? { out: fine.out, garbageAt: Math.max(0, fine.failedAt - 1) } : null;
  } finally {
    closeSync(fd);
  }
}

/** One pass of gunzipTail: the file in large writes up to `from`, then `step` bytes per write; where the write that failed starts, the output past `produced`, and the output's total. */
async function gunzipUntilFailure(fd: number, pieceAt: number, piece: Uint8Array, from: number, step: number, produced: number): Promise<{ failedAt: number; out: Uint8Array[]; total: number } | null> {
  const z = zlib.createGunzip();
  const out: Uint8Array[] = [];
  let total = 0;
  let failed = false;
  z.on("data", (d: Buffer) => {
    const skip = Math.max(0, produced - total);
    if (skip < d.length) out.push(d.subarray(skip));
    total += d.length;
  });
  z.on("error", () => (failed = true));
  const write = (bytes: Uint8Array) =>
    new Promise<void>((resolve) => {
      const done = () => {
        z.off("error", done);
        resolve();
      };
      z.once("error", done);
      z.write(bytes, () => done());
    });
  try {
    const buf = new Uint8Array(1 << 20);
    // The file's bytes before the piece, then the piece's up to `from`, in large writes.
    for (let at = 0; at < from && !failed; ) {
      let bytes: Uint8Array;
      if (at < pieceAt) {
        const { bytesRead } = await readFileAt(fd, buf, 0, Math.min(buf.length, pieceAt - at), at);
        if (bytesRead === 0) return null;
        bytes = buf.slice(0, bytesRead);
      } else bytes = piece.subarray(at - pieceAt, from - pieceAt);
      await write(bytes);
      at += bytes.length;
    }
    if (failed) return null;
    for (let at = from; at < pieceAt + piece.length; at += step) {
      await write(piece.subarray(at - pieceAt, at - pieceAt + step));
      if (failed) return { failedAt: at, out, total };
    }
    return null;
  } finally {
    z.destroy();
  }
}

/** A Parquet file given as another format: said before anything else about it (a feature list's fit to that format). */
export function parquetFileError(path: string): Error {
  return ComputeErrors.create("COMPUTE_ERR_SOURCE", `data file ${path} is a Parquet file (it starts with PAR1), not this format; read it with --format parquet and a --feature-list naming its columns`);
}

/** Throws parquetFileError for the first of `paths` that is a regular file starting with PAR1 (a FIFO is not opened). */
export function refuseParquetFiles(paths: readonly string[]): void {
  const head = new Uint8Array(8);
  for (const path of paths) {
    let fd: number;
    try {
      if (!statSync(path).isFile()) continue;
      fd = openSync(path, "r");
    } catch {
      continue; // the pass names a file it cannot open
    }
    try {
      if (readSync(fd, head, 0, 8, 0) === 8 && hasParquetMagic(head)) throw parquetFileError(path);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * A compressed file that its name says is not (--compression auto), or a
 * Parquet file, is refused with what to do: read as it is, its bytes were
 * "bad records" or "bad frames" that named no cause. gzip's magic is confirmed by inflating the
 * file's start, since an uncompressed Monolith or TFRecord file begins with a
 * length or sort id that can hold those bytes; zstd's four bytes as a length
 * would be a 4 GB record.
 */
function refuseMisread(path: string, fd: number): void {
  const head = new Uint8Array(1 << 16);
  // Positional: the read stream that follows starts at byte 0 all the same.
  const start = head.subarray(0, readSync(fd, head, 0, head.length, 0));
  // A Parquet file begins (and ends) with PAR1, which no TSV line, Monolith length or TFRecord length begins with in practice.
  if (start.length >= 8 && hasParquetMagic(start)) {
    closeSync(fd);
    throw parquetFileError(path);
  }
  const kind = compressionFromMagic(start);
  if (!kind || (kind === "gzip" && !inflatesAsGzip(start))) return;
  closeSync(fd);
  throw ComputeErrors.create(
    "COMPUTE_ERR_SOURCE",
    `data file ${path} is ${kind}-compressed (it starts with ${kind}'s magic bytes) but its name says uncompressed; name it ${path}${NAME_ENDING[kind]} (compressions are read by name), or give --compression ${kind} if every file given is`,
  );
}

const MAGIC_TEXT: Readonly<Record<"gzip" | "zstd", string>> = { gzip: "1f 8b", zstd: "28 b5 2f fd" };

/**
 * A file to be read as gzip or zstd (by its name, or --compression) whose first bytes are not that compression's magic
 * is refused with what to do: decompressing it fails at byte 0, which read as damage that cost the whole file
 * ("incorrect header check"). --compression applies to every file given, so it is suggested only for all of them.
 */
function refuseNotCompressed(path: string, fd: number, expected: "gzip" | "zstd", byName: boolean): void {
  const head = new Uint8Array(4);
  const start = head.subarray(0, readSync(fd, head, 0, head.length, 0));
  const kind = compressionFromMagic(start);
  if (kind === expected) return;
  closeSync(fd);
  const ending = byName ? /\.[^./]+$/.exec(path)![0] : "";
  const said = byName ? `is named ${ending}` : `is read as ${expected} (--compression ${expected}, which applies to every file given)`;
  const found = kind ? `it is ${kind}-compressed (it starts with ${kind}'s magic bytes)` : `it does not start with ${expected}'s magic bytes (${MAGIC_TEXT[expected]}), so it is not ${expected}-compressed or its first bytes are damaged`;
  const fix = byName
    ? kind
      ? `name it ${path.slice(0, -ending.length)}${NAME_ENDING[kind]}, or give --compression ${kind} if every file given is`
      : `if it is uncompressed, name it without ${ending}, or give --compression none if every file given is uncompressed`
    : `give --compression auto and name each file by its compression (${NAME_ENDING.gzip}, ${NAME_ENDING.zstd}, or no such ending when uncompressed)`;
  throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `data file ${path} ${said}, but ${found}: ${fix}`);
}

function inflatesAsGzip(start: Uint8Array): boolean {
  try {
    // A cut stream flushed, not an error: only bytes that are no deflate data throw.
    zlib.gunzipSync(start, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    return true;
  } catch {
    return false;
  }
}
