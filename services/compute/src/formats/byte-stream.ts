import { createReadStream, statSync, type ReadStream } from "node:fs";
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
  /** Decompressed bytes of `input`; `last` marks the file's final piece. Throws (rejects) on damage. */
  push(input: Uint8Array, last: boolean): Uint8Array[] | Promise<Uint8Array[]>;
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
  private pending: Uint8Array[] = [];
  private done = false;

  constructor(
    readonly path: string,
    readonly compression: Compression,
  ) {
    try {
      const st = statSync(path);
      this.size = st.size;
      this.mtimeMs = st.mtimeMs;
    } catch (err) {
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot read data file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    this.raw = createReadStream(path, { highWaterMark: READ_STEP });
    this.pieces = this.raw[Symbol.asyncIterator]();
    this.inflater = compression === "none" ? null : inflaterFor(compression);
  }

  /** The next decompressed piece, or null at the end (or at damage: see `damage`). */
  async next(): Promise<Uint8Array | null> {
    while (this.pending.length === 0) {
      if (this.done) return null;
      let r: IteratorResult<Uint8Array>;
      try {
        r = await this.pieces.next();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "EACCES") throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot read data file ${this.path}: ${code}`);
        this.fail(this.raw.bytesRead, `cannot ${this.compression}-decompress: ${(err as Error).message}`);
        return null;
      }
      const last = r.done === true;
      if (last) {
        this.done = true;
        if (this.raw.bytesRead < this.size) {
          this.fail(this.raw.bytesRead, `the file ends at byte ${this.raw.bytesRead}, but was ${this.size} bytes when reading began (it shrank while being read)`);
          return null;
        }
      }
      if (!this.inflater) {
        if (!last && r.value.length > 0) this.pending.push(r.value);
        continue;
      }
      try {
        this.pending = (await this.inflater.push(last ? new Uint8Array(0) : r.value, last)).filter((p) => p.length > 0);
      } catch (err) {
        this.fail(this.raw.bytesRead, `cannot ${this.compression}-decompress: ${(err as Error).message}`);
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

  /** Why the file is no longer what the pass read (another size or time, or gone), or null: a file rewritten during the pass is not trusted. */
  changed(): string | null {
    let st;
    try {
      st = statSync(this.path);
    } catch (err) {
      return `the file disappeared while being read (${(err as NodeJS.ErrnoException).code})`;
    }
    if (st.size !== this.size || st.mtimeMs !== this.mtimeMs) return `the file changed while being read (${this.size} bytes at the start, ${st.size} at the end)`;
    return null;
  }

  close(): void {
    this.raw.destroy();
    this.inflater?.close?.();
  }
}

function inflaterFor(kind: Exclude<Compression, "none">): Inflater {
  switch (kind) {
    case "gzip":
    case "zlib": {
      // Node's zlib stream (on libuv's threads), written a piece at a time: each write's output is in `out` when its callback runs.
      const z = kind === "gzip" ? zlib.createGunzip() : zlib.createInflate();
      const out: Uint8Array[] = [];
      let failure: Error | null = null;
      z.on("data", (d: Buffer) => out.push(d));
      z.on("error", (err) => (failure = err));
      return {
        push: async (input, last) => {
          await new Promise<void>((resolve) => {
            const done = () => {
              z.off("error", done);
              z.off("end", done);
              resolve();
            };
            z.once("error", done);
            if (last) {
              z.once("end", done);
              z.end();
            } else z.write(input, () => done());
          });
          if (failure) throw failure;
          return out.splice(0);
        },
        close: () => z.destroy(),
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
