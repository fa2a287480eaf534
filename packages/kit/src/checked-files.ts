import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from "node:fs";
import { join } from "node:path";

/** What a manifest records of each file it lists. */
export type FileSums = Record<string, { bytes: number; sha256: string }>;

/** A manifest's size limit: far above a real one (per-file sums and the model config, ~1 KB per slot), far below what would strain memory. */
export const MAX_MANIFEST_BYTES = 64 << 20;

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** What a path that is no regular file is, for a message ("a FIFO", "a device", ...). */
export function fileKind(st: Stats): string {
  if (st.isFIFO()) return "a FIFO";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  if (st.isSocket()) return "a socket";
  if (st.isDirectory()) return "a directory";
  return "not a regular file";
}

/**
 * A regular file's bytes, refused (through `fail`) when the path is a FIFO,
 * a device, a socket or a directory, or holds other than `bytes` (exactly,
 * when a manifest says) or more than `maxBytes`. Opened without blocking and
 * checked on the open descriptor: a FIFO read plainly would block the
 * process until a writer came, and /dev/zero would fill its memory.
 */
export function readRegularFile(path: string, name: string, fail: (msg: string) => Error, size: { bytes?: number; maxBytes?: number }): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === "ENOENT" ? `${name} is missing` : `cannot read ${name} (${code ?? (err as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw fail(`${name} is ${fileKind(st)}, not a regular file`);
    if (size.bytes !== undefined && st.size !== size.bytes) throw fail(`${name} has ${st.size} bytes, manifest says ${size.bytes}`);
    if (size.maxBytes !== undefined && st.size > size.maxBytes) throw fail(`${name} has ${st.size} bytes, more than the ${size.maxBytes} it may have`);
    const data = readFileSync(fd);
    // Changed between the stat and the read (still being written): the sizes say so.
    if (size.bytes !== undefined && data.length !== size.bytes) throw fail(`${name} has ${data.length} bytes, manifest says ${size.bytes}`);
    if (size.maxBytes !== undefined && data.length > size.maxBytes) throw fail(`${name} has ${data.length} bytes, more than the ${size.maxBytes} it may have`);
    return data;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads `name` from `dir` and checks it against the manifest's size and
 * SHA-256, so a missing, truncated or altered file is refused with a reason
 * (passed to `fail`, which makes the caller's error) instead of being loaded.
 */
export function readChecked(dir: string, name: string, files: FileSums | undefined, fail: (msg: string) => Error): Buffer {
  const meta = files?.[name];
  if (!meta) throw fail(`manifest does not list ${name}`);
  const data = readRegularFile(join(dir, name), name, fail, { bytes: meta.bytes });
  if (sha256Hex(data) !== meta.sha256) throw fail(`${name} fails its SHA-256 check`);
  return data;
}

/** The index of the first NaN or infinity in `a`, or -1: parameters that would make every prediction NaN. */
export function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}
