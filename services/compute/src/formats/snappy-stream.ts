import { createRequire } from "node:module";
import { concatBytes } from "./framing.js";

const require = createRequire(import.meta.url);
const snappy = require("snappyjs") as { uncompress(b: Uint8Array): Uint8Array };

/** The largest compressed chunk taken: snappy's bound for the 64 MiB a writer's buffer would never exceed. */
const MAX_CHUNK_BYTES = 32 + (1 << 26) + Math.ceil((1 << 26) / 6);

/**
 * The snappy block framing (see compression.ts) decoded as the file's bytes
 * arrive: whole chunks are uncompressed, a chunk cut by a piece's end waits
 * for the next piece. Holds at most one chunk's compressed bytes.
 */
export class SnappyBlockStream {
  private held: Uint8Array = new Uint8Array(0);
  /** Compressed bytes consumed before `held`. */
  private consumed = 0;
  /** Uncompressed bytes still due in the current block; -1 between blocks. */
  private blockLeft = -1;

  push(input: Uint8Array, last: boolean): Uint8Array[] {
    const data = this.held.length ? concatBytes([this.held, input]) : input;
    const out: Uint8Array[] = [];
    let at = 0;
    const bad = (msg: string) => new Error(`snappy stream at byte ${this.consumed + at}: ${msg}`);
    for (;;) {
      if (this.blockLeft <= 0) {
        if (data.length - at < 4) break;
        this.blockLeft = readU32BE(data, at);
        at += 4;
        continue;
      }
      if (data.length - at < 4) break;
      const chunkLength = readU32BE(data, at);
      // A damaged length would have the stream hold (and re-copy) bytes up to the file's end before failing.
      const most = Math.min(MAX_CHUNK_BYTES, 32 + this.blockLeft + Math.ceil(this.blockLeft / 6));
      if (chunkLength > most) throw bad(`a chunk of ${chunkLength} compressed bytes, more than snappy makes of the block's ${this.blockLeft} bytes left`);
      if (data.length - at - 4 < chunkLength) break;
      const chunk = snappy.uncompress(data.subarray(at + 4, at + 4 + chunkLength));
      at += 4 + chunkLength;
      this.blockLeft -= chunk.length;
      if (this.blockLeft < 0) throw bad("chunks hold more than the block's bytes");
      out.push(chunk);
    }
    this.consumed += at;
    this.held = data.slice(at);
    if (last && (this.held.length > 0 || this.blockLeft > 0)) throw bad(this.held.length ? "truncated chunk" : "truncated block");
    return out;
  }
}

export function readU32BE(d: Uint8Array, at: number): number {
  return ((d[at]! << 24) | (d[at + 1]! << 16) | (d[at + 2]! << 8) | d[at + 3]!) >>> 0;
}
