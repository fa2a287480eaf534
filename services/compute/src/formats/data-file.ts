import { closeSync, fstatSync, openSync, type Stats } from "node:fs";
import { refreshStatBuffer } from "@pangea/kit";
import { ComputeErrors } from "../errors.js";

/** A data file's size and modification time: what compute records when it starts (they key the record cache). */
export interface FileStamp {
  size: number;
  mtimeMs: number;
  /** Which file it is: a copy that keeps size and time (cp -p, rsync -t) is another inode. Not part of the cache key. */
  ino: number;
  /** A regular file (not a pipe or device, whose size and time say nothing of what it holds). */
  regular: boolean;
}

export function stampOf(st: Stats): FileStamp {
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, regular: st.isFile() };
}

/** A data file open for reading: its descriptor, and what fstat says of the file opened. */
export interface OpenedFile {
  fd: number;
  stamp: FileStamp;
}

/**
 * Opens a data file and checks, on the descriptor read from then on, that
 * it is still the file compute recorded at its start (`expected`, null:
 * nothing recorded). A file replaced or rewritten in between would be
 * cached under the old file's key, its records taken for the old ones.
 */
export function openDataFile(path: string, expected: FileStamp | null): OpenedFile {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot read data file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const st = fstatSync(fd);
  const opened: OpenedFile = { fd, stamp: stampOf(st) };
  // A FIFO's stat would send the parser module, loaded on demand next, down the wrong path (see refreshStatBuffer).
  if (!opened.stamp.regular) refreshStatBuffer();
  // A pipe or device says nothing of its contents by size or time; a regular file that became one has changed.
  const change = expected && (opened.stamp.regular || expected.regular) ? describeChange(expected, opened.stamp) : null;
  if (change) {
    closeSync(fd);
    throw ComputeErrors.create("COMPUTE_ERR_DATA_CHANGED", `data file ${path} changed after compute started: ${change}`, { hint: "compute keys its record cache by each file's size and time; start it again once the files are complete" });
  }
  return opened;
}

function describeChange(was: FileStamp, now: FileStamp): string | null {
  const at = (ms: number) => new Date(ms).toISOString();
  const kind = (regular: boolean) => (regular ? "a regular file" : "not a regular file");
  if (was.regular !== now.regular) return `${kind(was.regular)} then, ${kind(now.regular)} when its pass opened it`;
  if (was.size !== now.size) return `${was.size} bytes then, ${now.size} bytes when its pass opened it`;
  if (was.mtimeMs !== now.mtimeMs) return `modified at ${at(was.mtimeMs)} then, at ${at(now.mtimeMs)} when its pass opened it (same size)`;
  if (was.ino !== now.ino) return "another file of the same size and time when its pass opened it (it was replaced)";
  return null;
}
