import { gunzipSync, inflateSync } from "node:zlib";
import { createRequire } from "node:module";
import { decompress as zstdDecompress } from "fzstd";
import { ComputeErrors } from "../errors.js";
import { concatBytes } from "./framing.js";

const require = createRequire(import.meta.url);
// snappyjs is CommonJS without types: raw snappy blocks, compress and uncompress.
const snappy = require("snappyjs") as { uncompress(b: Uint8Array): Uint8Array; compress(b: Uint8Array): Uint8Array };

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

/**
 * Decompresses a whole file. Snappy uses the block framing Monolith's (and
 * Hadoop's) snappy streams use: repeated [uint32 BE uncompressed block
 * length][uint32 BE chunk length, raw snappy chunk]... until the block's
 * length is reached.
 */
export function decompress(data: Uint8Array, kind: Compression, file: string): Uint8Array {
  try {
    switch (kind) {
      case "none":
        return data;
      case "gzip":
        return gunzipSync(data);
      case "zlib":
        return inflateSync(data);
      case "zstd":
        return zstdDecompress(data);
      case "snappy":
        return snappyBlocks(data, file);
    }
  } catch (err) {
    if (ComputeErrors.is(err)) throw err;
    throw ComputeErrors.create("COMPUTE_ERR_BAD_FRAME", `${file}: cannot ${kind}-decompress: ${(err as Error).message}`);
  }
}

function be32(d: Uint8Array, at: number): number {
  return ((d[at]! << 24) | (d[at + 1]! << 16) | (d[at + 2]! << 8) | d[at + 3]!) >>> 0;
}

function snappyBlocks(data: Uint8Array, file: string): Uint8Array {
  const out: Uint8Array[] = [];
  let at = 0;
  const bad = (msg: string) => ComputeErrors.create("COMPUTE_ERR_BAD_FRAME", `${file}: snappy stream at byte ${at}: ${msg}`);
  while (at < data.length) {
    if (at + 4 > data.length) throw bad("truncated block length");
    const blockLength = be32(data, at);
    at += 4;
    let got = 0;
    while (got < blockLength) {
      if (at + 4 > data.length) throw bad("truncated chunk length");
      const chunkLength = be32(data, at);
      at += 4;
      if (chunkLength > data.length - at) throw bad(`chunk of ${chunkLength} bytes runs past the end`);
      const chunk = snappy.uncompress(data.subarray(at, at + chunkLength));
      at += chunkLength;
      got += chunk.length;
      if (got > blockLength) throw bad(`chunks hold more than the block's ${blockLength} bytes`);
      out.push(chunk);
    }
  }
  return concatBytes(out);
}

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
