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
