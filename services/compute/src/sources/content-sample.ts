import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readSync, statSync } from "node:fs";

/** Bytes sampled at each end of a file: enough to tell regenerated records apart, cheap for thousands of files. */
const SAMPLED = 16 * 1024;

/**
 * A digest of files' sizes and sampled bytes (each one's first and last
 * SAMPLED bytes), in the order given: the same records under the same names
 * give the same digest wherever they are copied; files regenerated with
 * other records (the same names, even the same lengths) give another.
 * The data position a resumed job goes on from means nothing in those.
 * "" when a path is not a regular file or cannot be read. A FIFO is not
 * opened at all: a reader that came and went would break its writer's pipe
 * before compute's pass reads it (and one swapped in between the stat and
 * the open is opened without waiting for a writer, and not read).
 */
export function contentSample(paths: readonly string[]): string {
  try {
    if (!paths.every((p) => statSync(p).isFile())) return "";
    const hash = createHash("sha256");
    const buf = Buffer.alloc(2 * SAMPLED);
    for (const path of paths) {
      const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        const stat = fstatSync(fd);
        if (!stat.isFile()) return "";
        const size = stat.size;
        const head = readSync(fd, buf, 0, Math.min(SAMPLED, size), 0);
        const tailFrom = Math.max(head, size - SAMPLED);
        const tail = readSync(fd, buf, head, size - tailFrom, tailFrom);
        hash.update(`${size}\n`).update(buf.subarray(0, head + tail));
      } finally {
        closeSync(fd);
      }
    }
    return hash.digest("hex").slice(0, 32);
  } catch {
    // A file gone or unreadable: no sample, no check.
    return "";
  }
}
