import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import zlib from "node:zlib";
import { Decompress as ZstdStream } from "fzstd";
import { ComputeErrors } from "../errors.js";
import type { Compression } from "./compression.js";
import { SnappyBlockStream } from "./snappy-stream.js";

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
}

interface Inflater {
  /** Decompressed bytes of `input`; `last` marks the file's final piece. Throws on damage. */
  push(input: Uint8Array, last: boolean): Uint8Array[];
}

/**
 * A file read in order, a piece at a time, decompressed on the way, so that
 * what a pass over a file holds does not grow with the file. Synchronous
 * (sources are read in one pass before compute serves).
 */
export class ByteStream {
  /** The file's size when the stream was opened. */
  readonly size: number;
  readonly mtimeMs: number;
  damage: StreamDamage | null = null;
  private readonly fd: number;
  private readonly inflater: Inflater | null;
  private readonly input = Buffer.allocUnsafe(READ_STEP);
  private fileOffset = 0;
  private outputOffset = 0;
  private pending: Uint8Array[] = [];
  private done = false;

  constructor(
    readonly path: string,
    readonly compression: Compression,
  ) {
    try {
      this.fd = openSync(path, "r");
    } catch (err) {
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot read data file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const st = fstatSync(this.fd);
    this.size = st.size;
    this.mtimeMs = st.mtimeMs;
    this.inflater = inflaterFor(compression);
  }

  /** The next decompressed piece, or null at the end (or at damage: see `damage`). */
  next(): Uint8Array | null {
    while (this.pending.length === 0) {
      if (this.done) return null;
      const n = readSync(this.fd, this.input, 0, READ_STEP, this.fileOffset);
      const at = this.fileOffset;
      this.fileOffset += n;
      const last = n === 0 || this.fileOffset >= this.size;
      if (n === 0 && this.fileOffset < this.size) {
        this.fail(at, `the file ends at byte ${this.fileOffset}, but was ${this.size} bytes when reading began (it shrank while being read)`);
        return null;
      }
      if (last) this.done = true;
      const piece = this.input.subarray(0, n);
      if (!this.inflater) {
        // The read buffer is reused: the caller gets its own copy.
        if (n > 0) this.pending.push(Uint8Array.prototype.slice.call(piece));
        continue;
      }
      try {
        this.pending = this.inflater.push(piece, last).filter((p) => p.length > 0);
      } catch (err) {
        if (ComputeErrors.is(err)) throw err;
        this.fail(at, `cannot ${this.compression}-decompress: ${(err as Error).message}`);
        return null;
      }
    }
    const p = this.pending.shift()!;
    this.outputOffset += p.length;
    return p;
  }

  private fail(fileOffset: number, message: string): void {
    this.done = true;
    this.pending = [];
    this.damage = { fileOffset, outputOffset: this.outputOffset, message };
  }

  /** Whether the file still is what the pass read (same size and time): a file rewritten during the pass is not trusted. */
  changed(): string | null {
    const st = fstatSync(this.fd);
    if (st.size !== this.size || st.mtimeMs !== this.mtimeMs) return `the file changed while being read (${this.size} bytes at the start, ${st.size} at the end)`;
    return null;
  }

  close(): void {
    closeSync(this.fd);
  }
}

function inflaterFor(kind: Compression): Inflater | null {
  switch (kind) {
    case "none":
      return null;
    case "gzip":
    case "zlib": {
      const z = kind === "gzip" ? zlib.createGunzip() : zlib.createInflate();
      // Node's zlib has no public synchronous streaming call; _processChunk without a callback is the one
      // gunzipSync itself uses (stable since Node 10). It consumes the piece and returns what it produced;
      // with Z_FINISH it throws "unexpected end of file" when the last member is truncated.
      const engine = z as unknown as { _processChunk(chunk: Uint8Array, flush: number): Buffer };
      return {
        push: (input, last) => [engine._processChunk(input, last ? zlib.constants.Z_FINISH : zlib.constants.Z_NO_FLUSH)],
      };
    }
    case "zstd": {
      const out: Uint8Array[] = [];
      // fzstd reuses its window: each piece is copied out. A frame cut short throws "unexpected EOF" at the last push.
      const z = new ZstdStream((d) => {
        out.push(d.slice());
      });
      return {
        push: (input, last) => {
          z.push(input, last);
          return out.splice(0);
        },
      };
    }
    case "snappy": {
      const s = new SnappyBlockStream();
      return { push: (input, last) => s.push(input, last) };
    }
  }
}
