import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/** The last `maxBytes` of a file as text ("" when it cannot be read): a process's log may be far larger than what is looked for at its end. */
export function readTail(path: string, maxBytes: number): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return "";
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, maxBytes);
    const buf = Buffer.allocUnsafe(length);
    const read = readSync(fd, buf, 0, length, size - length);
    return buf.toString("utf8", 0, read);
  } finally {
    closeSync(fd);
  }
}

/** A process's last log lines (what it said before exiting), from the last MiB of its log. */
export function readLastLines(path: string, n: number): string[] {
  const text = readTail(path, 1 << 20).trimEnd();
  return text ? text.split("\n").slice(-n) : [];
}

/** A usage error's last line, which points to --help; the line before it says what was wrong. */
const HELP_POINTER = /^Run '[^']+ --help' for usage\.$/;
/** A program's own error line: `pangea-trainer: error ...`, `pangea serve: ...`. */
const OWN_LINE = /^pangea[ -][a-z-]+: /;
/** What Node prints of an uncaught error that is not the reason itself: stack frames, the source line and caret, its version. */
const NOT_A_REASON = /^\s+at |^\s*\^+\s*$|^Node\.js v\d|^\s*$|^node:internal\//;

/**
 * Why a process exited, from its log's end: its own last error line where it wrote one (a stack trace may follow an
 * error it did not expect), else the last line that is not a stack frame or Node's trailer, else its last line.
 */
export function exitReason(path: string): string {
  const lines = readLastLines(path, 200).filter((l) => !HELP_POINTER.test(l));
  const own = lines.findLast((l) => OWN_LINE.test(l));
  if (own !== undefined) return own;
  return lines.findLast((l) => !NOT_A_REASON.test(l) && !l.startsWith("{")) ?? lines.at(-1) ?? "";
}

/** A JSON log's last line as its message (and any err field), or the last line as it is ("" for an empty log). */
export function lastLogMessage(path: string): string {
  const last = readLastLines(path, 1)[0] ?? "";
  try {
    const o = JSON.parse(last) as { msg?: unknown; err?: unknown };
    if (typeof o.msg === "string") return `${o.msg}${typeof o.err === "string" ? `: ${o.err}` : ""}`;
  } catch {
    // Not a JSON line: shown as it is.
  }
  return last;
}
