import { createRequire } from "node:module";
import { concatBytes } from "./framing.js";

const require = createRequire(import.meta.url);
// snappyjs is CommonJS without types: raw snappy blocks.
const snappy = require("snappyjs") as { compress(b: Uint8Array): Uint8Array };

export type Compression = "none" | "gzip" | "zlib" | "snappy" | "zstd";
export const COMPRESSIONS: readonly Compression[] = ["none", "gzip", "zlib", "snappy", "zstd"];

/** The compression a file name implies, for --compression auto. */
export function compressionFromName(path: string): Compression {
  if (/\.(gz|gzip)$/i.test(path)) return "gzip";
  if (/\.(zst|zstd)$/i.test(path)) return "zstd";
  if (/\.(snappy|sz)$/i.test(path)) return "snappy";
  if (/\.(zz|zlib)$/i.test(path)) return "zlib";
  return "none";
}

/** The name ending each kind is read by under --compression auto, for messages. */
export const NAME_ENDING: Readonly<Record<Exclude<Compression, "none">, string>> = { gzip: ".gz", zstd: ".zst", snappy: ".snappy", zlib: ".zz" };

/**
 * The compression a file's first bytes suggest, or null: gzip's and zstd's
 * magic numbers (1f 8b; 28 b5 2f fd). A hint, not a proof: an uncompressed
 * Monolith or TFRecord file begins with a length or sort id that can hold
 * gzip's two bytes (ByteStream confirms gzip by inflating). zlib's and
 * snappy's headers are not distinctive enough to try.
 */
export function compressionFromMagic(head: Uint8Array): "gzip" | "zstd" | null {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return null;
}

/** Parquet's magic number, PAR1: a Parquet file begins and ends with it. */
export function hasParquetMagic(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x50 && b[1] === 0x41 && b[2] === 0x52 && b[3] === 0x31;
}

/*
 * Snappy files use the block framing Monolith's (and Hadoop's) snappy streams
 * use: repeated [uint32 BE uncompressed block length][uint32 BE chunk length,
 * raw snappy chunk]... until the block's length is reached. They are read as a
 * stream by SnappyBlockStream (snappy-stream.ts), the other kinds by node's zlib
 * and fzstd's streams (byte-stream.ts).
 */

/** Writes the snappy block framing (one block, chunks of at most 64 KiB), for tests and tools. */
export function compressSnappyBlocks(data: Uint8Array, chunkSize = 1 << 16): Uint8Array {
  const parts: Uint8Array[] = [];
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint32(0, data.length);
  parts.push(head);
  for (let at = 0; at < data.length; at += chunkSize) {
    const c = snappy.compress(data.subarray(at, Math.min(data.length, at + chunkSize)));
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, c.length);
    parts.push(len, c);
  }
  return concatBytes(parts);
}
