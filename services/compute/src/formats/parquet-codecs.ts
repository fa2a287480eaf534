import { brotliDecompressSync, unzipSync } from "node:zlib";
import { Decompress as ZstdStream } from "fzstd";
import type { CompressionCodec, Compressors } from "hyparquet";
import type { XXHashAPI } from "xxhash-wasm";
import { ZstdFrames } from "./zstd-frames.js";
import { xxhash64 } from "./xxhash64.js";

/**
 * The page codecs compute reads beyond the library's own (uncompressed and
 * SNAPPY): GZIP, BROTLI, ZSTD, LZ4_RAW and LZ4. pyarrow, Spark and DuckDB
 * write ZSTD or GZIP when asked, and their "lz4" is LZ4_RAW (or, from older
 * writers, LZ4: Hadoop's framing, or a bare block under that name).
 * A page that decompresses to another size than its header says is damage,
 * found without making more than that size (zlib's codecs stop there, zstd
 * is decoded as a stream and stopped, LZ4 writes into it).
 */
export async function parquetDecompressors(): Promise<Compressors> {
  // ZSTD pages are checked against their frames' content checksums, as .zst files are (fzstd does not).
  const xxh = await xxhash64();
  return {
    // The format says gzip; unzip also takes the zlib wrapping some writers put there.
    GZIP: (input, size) => bounded("GZIP", size, () => unzipSync(input, { maxOutputLength: Math.max(1, size) })),
    BROTLI: (input, size) => bounded("BROTLI", size, () => brotliDecompressSync(input, { maxOutputLength: Math.max(1, size) })),
    ZSTD: (input, size) => bounded("ZSTD", size, () => zstdPage(input, size, xxh)),
    LZ4_RAW: (input, size) => lz4Block(input, size),
    LZ4: (input, size) => lz4Framed(input, size),
  };
}

/** The codecs a Parquet file's pages may use that compute reads. */
export const READABLE_CODECS: readonly CompressionCodec[] = ["UNCOMPRESSED", "SNAPPY", "GZIP", "BROTLI", "ZSTD", "LZ4_RAW", "LZ4"];

/** A page that decompresses to more than its header says: stopped there (a few hundred bytes of zstd can say gigabytes). */
class PageTooLarge extends Error {}

/** A codec's failure said as the page's damage (zlib stops at the declared size with a RangeError about buffers). */
function bounded(codec: string, size: number, inflate: () => Uint8Array): Uint8Array {
  let out: Uint8Array;
  try {
    out = inflate();
  } catch (err) {
    if (err instanceof PageTooLarge || (err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") throw new Error(`a ${codec} page decompresses to more than the ${size} bytes its header says`);
    throw new Error(`a ${codec} page does not decompress: ${(err as Error).message}`);
  }
  return exactly(out, size, codec);
}

/**
 * A ZSTD page into exactly `size` bytes: decoded as a stream and stopped once it passes that size, each frame's
 * output checked against its content checksum where it has one (the frames found as a .zst file's are, zstd-frames.ts).
 */
function zstdPage(input: Uint8Array, size: number, xxh: XXHashAPI): Uint8Array {
  const out = new Uint8Array(size);
  let o = 0;
  let hash = xxh.create64(0n);
  const z = new ZstdStream((piece) => {
    if (o + piece.length > size) throw new PageTooLarge();
    out.set(piece, o);
    hash.update(piece);
    o += piece.length;
  });
  let from = 0;
  for (const end of new ZstdFrames().feed(input)) {
    z.push(input.subarray(from, end.at));
    from = end.at;
    const sum = Number(hash.digest() & 0xffffffffn);
    hash = xxh.create64(0n);
    if (end.checksum !== null && sum !== end.checksum) throw new Error(`its frame at bytes ${end.start}-${end.at - 1} decodes to data whose checksum (XXH64) is not the frame's: its blocks are damaged`);
  }
  z.push(input.subarray(from), true);
  return out.subarray(0, o);
}

/** LZ4 as Hadoop frames it, or (older Arrow wrote it so, and a framing that does not decode may be one) a bare block. */
function lz4Framed(input: Uint8Array, size: number): Uint8Array {
  try {
    const framed = hadoopLz4(input, size);
    if (framed) return framed;
  } catch {
    // Laid out as frames, but their blocks do not decode: read as one bare block, as Arrow does.
  }
  return lz4Block(input, size);
}

function exactly(out: Uint8Array, size: number, codec: string): Uint8Array {
  if (out.length !== size) throw new Error(`a ${codec} page decompressed to ${out.length} bytes; its header says ${size}`);
  return out;
}

/**
 * Hadoop's LZ4 framing, as parquet-mr wrote the LZ4 codec: blocks each led
 * by their decompressed and compressed sizes (big-endian 32-bit). Null when
 * the input is not laid out so (older Arrow wrote a bare block under LZ4).
 */
function hadoopLz4(input: Uint8Array, size: number): Uint8Array | null {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const blocks: { from: number; to: number; out: number }[] = [];
  let at = 0;
  let outTotal = 0;
  while (at < input.length) {
    if (at + 8 > input.length) return null;
    const out = view.getUint32(at);
    const len = view.getUint32(at + 4);
    if (at + 8 + len > input.length || outTotal + out > size) return null;
    blocks.push({ from: at + 8, to: at + 8 + len, out });
    outTotal += out;
    at += 8 + len;
  }
  if (outTotal !== size || blocks.length === 0) return null;
  const result = new Uint8Array(size);
  let pos = 0;
  for (const b of blocks) {
    result.set(lz4Block(input.subarray(b.from, b.to), b.out), pos);
    pos += b.out;
  }
  return result;
}

/**
 * One LZ4 block (the block format, no frame) into exactly `size` bytes.
 * A block is sequences of a token (literal count, match length - 4), the
 * literals, and a match: a 2-byte little-endian distance back into the
 * output; counts of 15 go on in bytes that add up while they are 255.
 */
export function lz4Block(input: Uint8Array, size: number): Uint8Array {
  // A byte of a block gives at most 255 of output: a larger size is a damaged header, not a reason to allocate it.
  if (size > input.length * 255 + 16) throw new Error(`an LZ4 block of ${input.length} bytes cannot hold the ${size} bytes its page header says`);
  const out = new Uint8Array(size);
  let i = 0;
  let o = 0;
  const damaged = (what: string): Error => new Error(`an LZ4 block is damaged: ${what} (at byte ${i} of ${input.length})`);
  const count = (n: number): number => {
    if (n < 15) return n;
    for (;;) {
      if (i >= input.length) throw damaged("a length runs past its end");
      const b = input[i++]!;
      n += b;
      if (b !== 255) return n;
    }
  };
  while (i < input.length) {
    const token = input[i++]!;
    const literals = count(token >> 4);
    if (i + literals > input.length) throw damaged("literals run past its end");
    if (o + literals > size) throw damaged(`it holds more than the page's ${size} bytes`);
    out.set(input.subarray(i, i + literals), o);
    i += literals;
    o += literals;
    // The last sequence is literals only.
    if (i === input.length) break;
    if (i + 2 > input.length) throw damaged("a match distance runs past its end");
    const distance = input[i]! | (input[i + 1]! << 8);
    i += 2;
    if (distance === 0 || distance > o) throw damaged(`a match reaches ${distance} bytes back, before the output's start`);
    const length = count(token & 15) + 4;
    if (o + length > size) throw damaged(`it holds more than the page's ${size} bytes`);
    // Byte by byte: a match may overlap the bytes it is writing (a run).
    for (let k = 0; k < length; k++, o++) out[o] = out[o - distance]!;
  }
  if (o !== size) throw new Error(`an LZ4 block decompressed to ${o} bytes; its page header says ${size}`);
  return out;
}
