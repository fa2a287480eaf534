import { accessSync, constants, existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const codeOf = (err: unknown) => (err as NodeJS.ErrnoException).code;

/** Where the symbolic link at `path` points, when that is nowhere (the target does not exist); null for anything else. */
export function danglingLinkTarget(path: string): string | null {
  try {
    if (!lstatSync(path).isSymbolicLink()) return null;
    return existsSync(path) ? null : readlinkSync(path);
  } catch {
    return null;
  }
}

const danglingLink = (path: string, target: string) => Object.assign(new Error(`${path} is a symbolic link to ${target}, which does not exist`), { code: "EDANGLING" });

const fsError = (code: string, what: string, path: string) => Object.assign(new Error(`${code}: ${what}, mkdir '${path}'`), { code, path });

/**
 * The nearest of `path` and its parents that exists, whether it is a
 * directory, and the components below it that do not exist (outermost
 * first). A file further up makes the path's own stat fail with ENOTDIR: the
 * walk goes on up to it. Any other failure is thrown.
 */
function nearestExisting(path: string): { at: string; isDir: boolean; missing: string[] } {
  const missing: string[] = [];
  let at = resolve(path);
  for (;;) {
    try {
      return { at, isDir: statSync(at).isDirectory(), missing: missing.reverse() };
    } catch (err) {
      const parent = dirname(at);
      if ((codeOf(err) !== "ENOENT" && codeOf(err) !== "ENOTDIR") || parent === at) throw err;
      // A symbolic link to nothing: mkdir there fails later (EEXIST, or ENOENT through it), so it is the answer now.
      const target = codeOf(err) === "ENOENT" ? danglingLinkTarget(at) : null;
      if (target !== null) throw danglingLink(at, target);
      missing.push(at);
      at = parent;
    }
  }
}

/**
 * `mkdir -p`, one missing component at a time. Node's own recursive
 * mkdirSync never returns where mkdir answers ENOENT under a parent that
 * exists, as Linux's /proc does (measured: Node 20.20 at 100% CPU for 15
 * minutes on `/proc/nope/x`); here that ENOENT is the error. Errors carry
 * Node's codes (ENOTDIR when a component is a file).
 */
export function makeDirs(path: string, mode?: number): void {
  const { at, isDir, missing } = nearestExisting(path);
  if (!isDir) throw fsError("ENOTDIR", "not a directory", at);
  for (const dir of missing) {
    try {
      mkdirSync(dir, mode === undefined ? undefined : { mode });
    } catch (err) {
      // Made meanwhile by another process: fine if it is a directory.
      if (codeOf(err) === "EEXIST" && statSync(dir).isDirectory()) continue;
      throw err;
    }
  }
}

/**
 * Why `dir` cannot take what a process will write into it later, or null:
 * it must be a directory where an entry can be made, or not exist yet under
 * one (it is made then). Checked by making and removing an entry in the
 * nearest directory that exists, not by permission bits: root passes every
 * access check, also on /proc and /sys, where nothing can be made.
 */
export function unwritableDirReason(dir: string): string | null {
  const target = resolve(dir);
  let found: ReturnType<typeof nearestExisting>;
  try {
    found = nearestExisting(target);
  } catch (err) {
    if (codeOf(err) === "EDANGLING") return (err as Error).message;
    return `cannot use ${dir} (${codeOf(err) ?? (err as Error).message})`;
  }
  const { at, isDir } = found;
  if (!isDir) return `${at === target ? dir : `${at} (in ${dir}'s path)`} is not a directory`;
  try {
    rmdirSync(mkdtempSync(join(at, ".pangea-write-check-")));
  } catch (err) {
    return `${at === target ? dir : `${at}, where ${dir} would be made,`} is not writable (${codeOf(err) ?? (err as Error).message})`;
  }
  return null;
}

/**
 * Why a file cannot be written at `path` once the work that fills it is
 * done, or null: checked before the work, so a wrong path costs nothing. A
 * directory, a symbolic link to nothing (writing through it would fail or
 * make a file elsewhere), a file without write access, or a directory part
 * that cannot be used or made ({@link unwritableDirReason}). Each reason
 * starts with the path, so a caller puts its flag's name in front.
 */
export function unwritableFileReason(path: string): string | null {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    const target = codeOf(err) === "ENOENT" ? danglingLinkTarget(path) : null;
    if (target !== null) return danglingLink(path, target).message;
    // Otherwise not there yet, or under something that is no directory: the directory's reason says which.
  }
  if (isDir) return `${path} is a directory; give a file path`;
  try {
    accessSync(path, constants.W_OK);
  } catch (err) {
    if (codeOf(err) !== "ENOENT" && codeOf(err) !== "ENOTDIR") return `${path} is not writable (${codeOf(err) ?? (err as Error).message})`;
  }
  const problem = unwritableDirReason(dirname(path));
  return problem === null ? null : `${path}: ${problem}`;
}
