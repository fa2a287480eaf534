import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** What a manifest records of each file it lists. */
export type FileSums = Record<string, { bytes: number; sha256: string }>;

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Reads `name` from `dir` and checks it against the manifest's size and
 * SHA-256, so a missing, truncated or altered file is refused with a reason
 * (passed to `fail`, which makes the caller's error) instead of being loaded.
 */
export function readChecked(dir: string, name: string, files: FileSums | undefined, fail: (msg: string) => Error): Buffer {
  const meta = files?.[name];
  if (!meta) throw fail(`manifest does not list ${name}`);
  let data: Buffer;
  try {
    data = readFileSync(join(dir, name));
  } catch {
    throw fail(`${name} is missing`);
  }
  if (data.length !== meta.bytes) throw fail(`${name} has ${data.length} bytes, manifest says ${meta.bytes}`);
  if (sha256Hex(data) !== meta.sha256) throw fail(`${name} fails its SHA-256 check`);
  return data;
}
