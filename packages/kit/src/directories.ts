import { mkdirSync, mkdtempSync, rmdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const codeOf = (err: unknown) => (err as NodeJS.ErrnoException).code;

const fsError = (code: string, what: string, path: string) => Object.assign(new Error(`${code}: ${what}, mkdir '${path}'`), { code, path });

/**
 * `mkdir -p`, one missing component at a time. Node's own recursive
 * mkdirSync never returns where mkdir answers ENOENT under a parent that
 * exists, as Linux's /proc does (measured: Node 20.20 at 100% CPU for 15
 * minutes on `/proc/nope/x`); here that ENOENT is the error. Errors carry
 * Node's codes (ENOTDIR when a component is a file).
 */
export function makeDirs(path: string, mode?: number): void {
  const missing: string[] = [];
  let at = resolve(path);
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(at).isDirectory();
    } catch (err) {
      const parent = dirname(at);
      if (codeOf(err) !== "ENOENT" || parent === at) throw err;
      missing.push(at);
      at = parent;
      continue;
    }
    if (!isDir) throw fsError("ENOTDIR", "not a directory", at);
    break;
  }
  for (const dir of missing.reverse()) {
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
  let at = target;
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(at).isDirectory();
    } catch (err) {
      const parent = dirname(at);
      // ENOTDIR: a file further up, named below once it is reached.
      if ((codeOf(err) === "ENOENT" || codeOf(err) === "ENOTDIR") && parent !== at) {
        at = parent;
        continue;
      }
      return `cannot use ${dir} (${codeOf(err) ?? (err as Error).message})`;
    }
    if (!isDir) return `${at === target ? dir : `${at} (in ${dir}'s path)`} is not a directory`;
    try {
      rmdirSync(mkdtempSync(join(at, ".pangea-write-check-")));
    } catch (err) {
      return `${at === target ? dir : `${at}, where ${dir} would be made,`} is not writable (${codeOf(err) ?? (err as Error).message})`;
    }
    return null;
  }
}
