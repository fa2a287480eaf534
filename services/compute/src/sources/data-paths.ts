import { readdirSync, statSync } from "node:fs";
import { join, resolve, sep } from "node:path";
import { danglingLinkTarget, fileKind } from "@pangea/kit";
import { ComputeErrors } from "../errors.js";

const WILDCARD = /[*?[]/;

/**
 * The files a --data (or --eval-data) list names, in training order: a
 * file is itself; a directory is its files (not hidden ones, nor those
 * named with a leading '_', nor its subdirectories), by name; a glob (`*`, `?`, `[...]` in any path part,
 * expanded here so a quoted pattern works the same from any shell; a
 * wildcard matches no leading '.' nor, unlike a shell's, a leading '_') is its
 * matches, by path, a matching directory being its files (as the shell's
 * expansion of the pattern would name it). Each entry keeps its place in the list. An entry that
 * names nothing, and a file named twice (by one path, or by two that reach it: a link), are errors.
 */
export function expandDataPaths(entries: readonly string[], flag: string, notes: string[] = []): string[] {
  const out: string[] = [];
  const seen = new Map<string, { entry: string; path: string }>();
  // 'a,b,' or ',': an empty entry names nothing, and is left out; a flag of nothing but those is refused.
  const named = entries.filter((e) => e.trim() !== "");
  if (named.length === 0) throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${flag} names no file`);
  for (const entry of named) {
    // A file whose name holds a wildcard character is itself, when it exists.
    const pattern = WILDCARD.test(entry) && !exists(entry);
    const files = pattern ? globFiles(entry, flag, notes) : namedFiles(entry, flag, notes);
    if (files.length === 0) {
      const what = pattern ? `the pattern '${entry}' matches no file` : `the directory ${entry} holds no files${hiddenNote(entry)}`;
      // The flag's value names nothing: a bad flag, exit 2 like any other.
      throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${flag}: ${what}`);
    }
    for (const f of files) {
      // A file read twice would train twice as often as the others, and silently: refused, also under another name
      // (a symbolic or hard link: a directory holding day_0.tsv and latest.tsv -> day_0.tsv).
      const key = fileIdentity(f);
      const first = seen.get(key);
      if (first !== undefined) {
        const by = first.entry === entry ? `by '${entry}'` : `by '${first.entry}' and by '${entry}'`;
        const what = resolve(first.path) === resolve(f) ? `${f} twice` : `one file twice: ${first.path} and ${f} are the same file (a link)`;
        throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${flag} names ${what} (${by})`);
      }
      seen.set(key, { entry, path: f });
    }
    out.push(...files);
  }
  return out;
}

/**
 * The files both lists name (`inB` as `b` names it, `inA` as `a` does: a link may name it otherwise), or []: held-out
 * records that also train would flatter the evaluation.
 */
export function sharedFiles(a: readonly string[], b: readonly string[]): { inA: string; inB: string }[] {
  const inA = new Map(a.map((f) => [fileIdentity(f), f]));
  return b.flatMap((f) => {
    const same = inA.get(fileIdentity(f));
    return same === undefined ? [] : [{ inA: same, inB: f }];
  });
}

/** What tells files apart: the device and inode a path reaches (links to one file are one), else its absolute path. */
function fileIdentity(path: string): string {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return resolve(path);
  }
}

/**
 * Files a directory's listing passes over: hidden ones, and those Hadoop and Spark write beside the data, named with a
 * leading '_' (_SUCCESS, an empty marker; _metadata, a footer of the others' row groups), which their readers pass over too.
 */
function passedOver(name: string): boolean {
  return name.startsWith(".") || name.startsWith("_");
}

/**
 * For a directory of no data files: the files it holds that are passed over (not compute's own .pangea-cache), or the
 * subdirectories it holds (a Hive-partitioned directory, day=0/...), and how to read them.
 */
function hiddenNote(dir: string): string {
  try {
    const entries = readdirSync(dir, { withFileTypes: true });
    // Subdirectories first: a Spark job's partitioned output holds day=0/... beside its _SUCCESS marker.
    const dirs = entries.filter((e) => e.isDirectory() && !passedOver(e.name)).map((e) => e.name).sort();
    const shown = dirs.slice(0, 3).join(", ") + (dirs.length > 3 ? ", ..." : "");
    if (dirs.length) return ` (it holds ${dirs.length === 1 ? "the directory" : `${dirs.length} directories:`} ${shown}; a directory's subdirectories are not read: name them, or a pattern such as '${dir.replace(/\/+$/, "")}/*/*')`;
    const hidden = entries.filter((e) => passedOver(e.name) && e.name !== ".pangea-cache" && (e.isFile() || e.isSymbolicLink())).map((e) => e.name);
    return hidden.length ? ` to read (${hidden.length === 1 ? `${hidden[0]} is passed over` : `${hidden.length} passed over, such as ${hidden[0]}`}: files whose names start with '.' or '_' are not read from a directory; name one on its own to read it)` : "";
  } catch {
    return "";
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * `notes`: told of a directory read for its files that also holds subdirectories, whose files are not read (a
 * partition's hour=0/... beside a stray file: those had been left out without a word).
 */
function namedFiles(entry: string, flag: string, notes: string[]): string[] {
  let st;
  try {
    st = statSync(entry);
  } catch (err) {
    throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${flag}: cannot read data file ${entry}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!st.isDirectory()) return [entry];
  const names = readdirSync(entry).filter((name) => !passedOver(name));
  const files = names.filter((name) => isDataFile(join(entry, name), `the directory ${entry}`, flag));
  // A set: a Spark job's output directory may hold thousands of part files.
  const isFile = new Set(files);
  const dirs = names.filter((name) => !isFile.has(name) && isDir(join(entry, name))).sort();
  // With no files at all the directory is refused, saying this (hiddenNote).
  if (files.length && dirs.length) {
    const base = entry.replace(/\/+$/, "");
    notes.push(`${flag}: the directory ${base} holds subdirectories whose files are not read (${dirs.slice(0, 3).join(", ")}${dirs.length > 3 ? `, and ${dirs.length - 3} more` : ""}); name them, or a pattern such as '${base}/*/*', to read them`);
  }
  return files.map((name) => join(entry, name)).sort();
}

/**
 * Whether an entry a directory or a pattern yields is a file to read: a
 * regular file (or a link to one) is, a directory is passed over. A link to
 * nothing (a day's file moved or unmounted) and a FIFO, socket or device
 * are refused by name: passing over them lost that data without a word, and
 * reading a FIFO found in a listing would wait for a writer.
 */
function isDataFile(path: string, where: string, flag: string): boolean {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const target = code === "ENOENT" ? danglingLinkTarget(path) : null;
    if (target !== null) throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${flag}: ${where} holds ${path}, a symbolic link to ${target}, which does not exist`);
    if (code === "ENOENT" || code === "ENOTDIR") return false;
    throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${flag}: ${where} holds ${path}, which cannot be read (${code ?? (err as Error).message})`);
  }
  if (st.isFile()) return true;
  if (st.isDirectory()) return false;
  throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${flag}: ${where} holds ${path}, ${fileKind(st)}, not a data file; name it in ${flag} on its own to read it as one`);
}

/** A glob's matching files, sorted: each path part with a wildcard is matched against a directory's entries. */
function globFiles(pattern: string, flag: string, notes: string[]): string[] {
  const absolute = pattern.startsWith("/");
  const parts = pattern.split(/\/+/).filter((p, i) => p !== "" || i === 0);
  let dirs = [absolute ? "/" : "."];
  const start = absolute ? 1 : 0;
  for (let i = start; i < parts.length; i++) {
    const part = parts[i]!;
    const last = i === parts.length - 1;
    const next: string[] = [];
    for (const dir of dirs) {
      if (!WILDCARD.test(part)) {
        const p = join(dir, part);
        if (last) next.push(...matchedFiles(p, pattern, flag, notes));
        else if (isDir(p)) next.push(p);
        continue;
      }
      const re = partRegex(part);
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        // As shells do: a wildcard does not match a leading dot; nor, as in a directory's listing, a leading '_'.
        if (passedOver(name) && !part.startsWith(name[0]!)) continue;
        if (!re.test(name)) continue;
        const p = join(dir, name);
        if (last) next.push(...matchedFiles(p, pattern, flag, notes));
        else if (isDir(p)) next.push(p);
      }
    }
    dirs = next;
  }
  const prefix = absolute ? "" : `.${sep}`;
  return dirs.map((p) => (!absolute && p.startsWith(prefix) ? p.slice(prefix.length) : p)).sort();
}

/** A pattern's match: a file is itself; a directory, its files (as when named on its own: passing over it lost its data without a word). */
function matchedFiles(path: string, pattern: string, flag: string, notes: string[]): string[] {
  if (isDataFile(path, `the pattern '${pattern}'`, flag)) return [path];
  return isDir(path) ? namedFiles(path, flag, notes) : [];
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A path part's pattern as a regex: `*` any run of characters, `?` one, `[...]` a class (`[!...]` negated). */
function partRegex(part: string): RegExp {
  let re = "^";
  for (let i = 0; i < part.length; i++) {
    const c = part[i]!;
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const close = part.indexOf("]", i + 2);
      if (close < 0) {
        re += "\\[";
        continue;
      }
      let body = part.slice(i + 1, close);
      if (body.startsWith("!")) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, "\\\\")}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`${re}$`);
}

/**
 * The data files that hold no bytes at all, as a warning (null when none): a pass reads nothing from them, which
 * is no damage, but seldom what was meant (a copy that failed, a file still being written). `stamps`: the sizes
 * compute recorded at its start.
 */
export function emptyFilesWarning(paths: readonly string[], stamps: ReadonlyMap<string, { size: number; regular: boolean }>): string | null {
  const empty = paths.filter((p) => stamps.get(p)?.regular && stamps.get(p)?.size === 0);
  if (empty.length === 0) return null;
  const shown = empty.length > 4 ? `${empty.slice(0, 4).join(", ")} and ${empty.length - 4} more` : empty.join(", ");
  return `data file${empty.length === 1 ? "" : "s"} ${shown} ${empty.length === 1 ? "is" : "are"} empty (0 bytes): nothing was read from ${empty.length === 1 ? "it" : "them"}`;
}
