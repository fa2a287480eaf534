import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { SchemaErrors } from "./errors.js";

/**
 * The dense exchange's file layout (ParameterSet.denseFile,
 * GradientUpdate.denseFile): the model's dense tensors as float32, one after
 * another in their parameter order, nothing else. Writer and reader are
 * processes of one machine, so the byte order is that machine's.
 *
 * A name is written once: a writer that recycles an old file's pages renames
 * it to the new name first, then writes. A reader that still finds the name
 * after reading it whole read that version alone (a recycling rename that
 * came later changed nothing it read); one that does not discards what it
 * read (readDenseFile fails).
 */

/**
 * Writes the tensors to `path` (mode 0600, never through a link), into the
 * file `recycle` names when it still exists (renamed to `path`: its pages are
 * reused, which costs a fifth of making them anew on tmpfs), else a new file.
 */
export function writeDenseFile(path: string, tensors: readonly Float32Array[], recycle: string | null = null): void {
  let fd: number | null = null;
  if (recycle) {
    try {
      renameSync(recycle, path);
      // Non-blocking, and only a regular file of one name: a FIFO put in its place would block the open (and the
      // process) forever, and a hard link would carry the write to another name.
      fd = openSync(path, constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const st = fstatSync(fd);
      if (!st.isFile() || st.nlink !== 1) {
        closeSync(fd);
        fd = null;
      }
    } catch {
      fd = null;
    }
    // Whatever took the recycled file's place goes; the new file is made afresh.
    if (fd === null) rmSync(path, { force: true });
  }
  fd ??= openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  let written = false;
  try {
    let at = 0;
    for (const t of tensors) {
      const bytes = new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
      for (let done = 0; done < bytes.byteLength; ) {
        const n = writeSync(fd, bytes, done, bytes.byteLength - done, at);
        done += n;
        at += n;
      }
    }
    // A recycled file of another length (another model's) ends where this one does.
    ftruncateSync(fd, at);
    written = true;
  } finally {
    closeSync(fd);
    // A file half written (the disk full) is nobody's to read, and would hold on to the room.
    if (!written) rmSync(path, { force: true });
  }
}

/**
 * Reads a file of this layout as one array per tensor, of `lengths` elements
 * each, over one new buffer. Fails with SCHEMA_ERR_BAD_FILE naming the file
 * if it is missing, a link, not a regular file, of another size, or was
 * recycled while it was read.
 */
export function readDenseFile(path: string, lengths: readonly number[]): Float32Array[] {
  const total = lengths.reduce((a, n) => a + n, 0);
  const bad = (why: string) => SchemaErrors.create("SCHEMA_ERR_BAD_FILE", `dense file ${path}: ${why}`);
  let fd: number;
  let bytes: Buffer;
  try {
    // Non-blocking: a FIFO of that name is refused below instead of waiting for a writer forever.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw bad((err as NodeJS.ErrnoException).code ?? (err as Error).message);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw bad("not a regular file");
    if (st.size !== total * 4) throw bad(`holds ${st.size} bytes, expected ${total * 4} (${total} float32 values)`);
    // Allocated once the file is known to hold exactly this much (lengths may come from a peer's message); not
    // zero-filled first: every byte is read into it.
    bytes = Buffer.allocUnsafeSlow(total * 4);
    for (let at = 0; at < bytes.byteLength; ) {
      const n = readSync(fd, bytes, at, bytes.byteLength - at, at);
      if (n === 0) throw bad(`ended at byte ${at} of ${bytes.byteLength}`);
      at += n;
    }
    let now: ReturnType<typeof statSync> | undefined;
    try {
      now = statSync(path);
    } catch {
      now = undefined;
    }
    if (!now || now.ino !== st.ino || now.dev !== st.dev) throw bad("recycled by its writer while it was read");
  } finally {
    closeSync(fd);
  }
  const all = new Float32Array(bytes!.buffer, bytes!.byteOffset, total);
  const out: Float32Array[] = [];
  let at = 0;
  for (const n of lengths) {
    out.push(all.subarray(at, at + n));
    at += n;
  }
  return out;
}
