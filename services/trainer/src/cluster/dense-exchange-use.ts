import { randomBytes } from "node:crypto";
import { closeSync, constants, lstatSync, openSync, readSync, rmSync } from "node:fs";
import { join } from "node:path";
import { printable, type Logger } from "@pangea/kit";
import { paramSize, type DenseParam } from "@pangea/model";
import { readDenseFile, writeDenseFile } from "@pangea/schema";

/** A weight file's name as parameter servers give it; nothing else is opened. */
const WEIGHTS_FILE = /^w-[0-9]{1,15}$/;
/** A rows file's name as parameter servers give it: the pulling trainer's rank, then a number. */
const ROWS_FILE = /^r-([0-9]{1,10})-[0-9]{1,15}$/;

/**
 * A trainer's use of a parameter server's dense exchange (see the
 * orchestrator's DenseExchange and ParameterSet.exchangeDir): the directory
 * named with the dense parameters is used once checked to be the server's own
 * on this machine; weight files are read from it and the trainer's dense
 * gradients written to it, two files in turn. Anything that fails gives the
 * exchange up (the messages carry the dense tensors) until another directory
 * is named, a restarted server's.
 */
export class DenseExchangeUse {
  private dir: string | null = null;
  /** Names this trainer's gradient files apart from other trainers'. */
  private token = "";
  private files = 0;
  /** The directory last named: checked once. */
  private namedDir = "";
  private lostDir = "";
  /** Gradient files written and not removed, wherever the exchange went since. */
  private readonly written = new Set<string>();
  private readonly lengths: number[];

  constructor(
    params: readonly DenseParam[],
    private readonly log: Logger | null = null,
  ) {
    this.lengths = params.map(paramSize);
  }

  /** Whether pulls ask for the dense parameters (and a training pull for its rows) as files. */
  get active(): boolean {
    return this.dir !== null;
  }

  /**
   * The directory named with the dense parameters: used from now on if it is
   * a directory (not a link) of this user, mode 0700, holding the nonce sent,
   * i.e. the parameter server's own on this machine. None named (a server
   * with the exchange off) or one that fails the check: the messages.
   */
  named(dir: string, nonce: string): void {
    if (dir === this.namedDir) return;
    this.namedDir = dir;
    this.dir = null;
    if (!dir || !nonce || dir === this.lostDir || !isServersDir(dir, nonce)) return;
    this.dir = dir;
    this.token = randomBytes(16).toString("hex");
    this.files = 0;
    this.log?.info({ dir }, "dense parameters and gradients through the parameter server's exchange directory");
  }

  /** The dense parameters from a weight file; null if the exchange is not in use or the file cannot be read (then given up). */
  readWeights(name: string): Float32Array[] | null {
    if (!this.dir) return null;
    if (!WEIGHTS_FILE.test(name)) {
      this.giveUp(`the parameter server named dense file "${printable(name, 40)}", expected w-<number>`);
      return null;
    }
    try {
      return readDenseFile(join(this.dir, name), this.lengths);
    } catch (err) {
      this.giveUp(`reading ${name}: ${(err as Error).message}`);
      return null;
    }
  }

  /**
   * A training pull's rows from the rows file the parameter server named
   * (`r-RANK-N`, this trainer's rank), `total` floats; null if the exchange is
   * not in use or the file cannot be read whole (then given up: the caller
   * reads the rows again in a message).
   */
  readRows(name: string, rank: number, total: number): Float32Array | null {
    if (!this.dir) return null;
    if (ROWS_FILE.exec(name)?.[1] !== String(rank)) {
      this.giveUp(`the parameter server named rows file "${printable(name, 40)}", expected r-${rank}-<number>`);
      return null;
    }
    try {
      return readDenseFile(join(this.dir, name), [total])[0]!;
    } catch (err) {
      this.giveUp(`reading ${name}: ${(err as Error).message}`);
      return null;
    }
  }

  /**
   * Writes a push's gradients (the dense ones, then the rows' where the
   * server reads them there) to the next of this trainer's two files; its
   * name, or null (the gradients go in the message) if the exchange is
   * not in use or the file cannot be written (then given up). One push at a
   * time: the file before last is recycled, read when its push was answered.
   */
  writeGradients(grads: readonly Float32Array[]): string | null {
    const dir = this.dir;
    if (!dir) return null;
    const n = this.files++;
    const name = `g-${this.token}-${n}`;
    const recycle = n >= 2 ? join(dir, `g-${this.token}-${n - 2}`) : null;
    try {
      writeDenseFile(join(dir, name), grads, recycle);
    } catch (err) {
      this.giveUp(`writing ${name}: ${(err as Error).message}`);
      return null;
    }
    if (recycle) this.written.delete(recycle);
    this.written.add(join(dir, name));
    return name;
  }

  /** Stops using the exchange's directory (the messages from now on, unless another is named); this trainer's files there go. */
  giveUp(why: string): void {
    if (!this.dir) return;
    this.log?.warn({ dir: this.dir, why }, "dense exchange given up: dense tensors go in the messages");
    this.lostDir = this.dir;
    this.dir = null;
    this.removeFiles();
  }

  /** Removes this trainer's gradient files (it is leaving). */
  removeFiles(): void {
    for (const path of this.written) rmSync(path, { force: true });
    this.written.clear();
  }
}

/** A directory of this user, not a link, mode 0700, whose file `nonce` (a regular file, read without waiting) holds `nonce`. */
function isServersDir(dir: string, nonce: string): boolean {
  try {
    const st = lstatSync(dir);
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o777) !== 0o700) return false;
    const fd = openSync(join(dir, "nonce"), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const buf = Buffer.alloc(nonce.length + 1);
      const n = readSync(fd, buf, 0, buf.length, 0);
      return buf.subarray(0, n).toString("utf8") === nonce;
    } finally {
      closeSync(fd);
    }
  } catch {
    // Another machine's directory (or container's), or not ours: the messages it is.
    return false;
  }
}
