import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { printable, processExists } from "@pangea/kit";
import { readDenseFile, SchemaErrors, writeDenseFile } from "@pangea/schema";
import type { DenseStore } from "./dense-store.js";
import { OrchestratorErrors } from "../errors.js";

/** Where the exchange directory is made: tmpfs, so its files are memory and never reach a disk. */
export const EXCHANGE_BASE = "/dev/shm";
const PREFIX = "pangea-exchange-";
/** An exchange directory's name: its process's pid namespace and pid, then mkdtemp's suffix. */
const DIR_NAME = new RegExp(`^${PREFIX}(\\d+)-(\\d+)-`);
/** Weight files on disk at most (the newest and the three before it): an async trainer may still be about to read one. */
const WEIGHT_FILES = 4;
/** A gradient file's name, as trainers make it: their random token and a sequence number. Nothing else is read. */
const GRADIENT_FILE = /^g-([0-9a-f]{32})-[0-9]{1,15}$/;
/** A trainer rewrites its gradient files every push: ones untouched this long are a gone trainer's (SIGTERM, kill -9). */
const GRADIENT_FILE_MAX_AGE_MS = 10 * 60_000;
const GRADIENT_SWEEP_EVERY_MS = 60_000;
/** Rows files per trainer rank, recycled in turn: a trainer reads one answer's rows before it pulls again. */
const ROWS_FILES = 2;

/**
 * The dense exchange: the dense parameters, a training pull's rows and the
 * gradients of both between this parameter server and the trainers on its
 * machine as files in a tmpfs directory instead of inside the gRPC messages
 * (a 2 MB tensor costs a message several copies, HTTP/2 framing and
 * reassembly on both sides; a file is one copy in and one out).
 *
 * The directory is the server's own (mode 0700), so only processes of the
 * same user on the same machine can open it; its file `nonce` holds a random
 * value also sent in pull answers, so a trainer can tell it sees this
 * directory and not a namesake. Weight files (`w-VERSION`) are written once
 * per version of the parameters, when a trainer first asks for that version;
 * the newest four are kept, the oldest one's pages recycled for the next
 * (writeDenseFile says how a reader tells). Rows files (`r-RANK-N`) hold
 * one training pull's rows each, two per trainer rank recycled in turn.
 * Gradient files (the dense gradients, then the row gradients) are written by
 * trainers (two each, recycled in turn) and read here: only names of their
 * form, inside this directory, without following links, each trainer's token
 * for one rank only. The directory goes with the process (`close`, on exit);
 * its name carries the process's pid (and pid namespace), so the next server
 * on the machine removes one left by a process killed outright
 * (`sweepStale`); gradient files a gone trainer left are removed after ten
 * minutes.
 */
export class DenseExchange {
  readonly nonce = randomBytes(16).toString("hex");
  private readonly weightFiles: string[] = [];
  private writtenVersion = -1;
  /** Each gradient token's rank (the first to name it): another rank naming it is refused. */
  private readonly tokens = new Map<string, number>();
  private sweptAt = Date.now();
  private rowsSweptAt = Date.now();
  /** Rows files written so far per rank (the next one's number). */
  private readonly rowsWritten = new Map<number, number>();

  private constructor(readonly dir: string) {}

  /** An exchange in a new directory under `base`, or why there is none (`base` missing or not writable). */
  static open(base = EXCHANGE_BASE): { exchange: DenseExchange | null; why: string } {
    let dir: string;
    try {
      if (!statSync(base).isDirectory()) return { exchange: null, why: `${base} is not a directory` };
      DenseExchange.sweepStale(base);
      dir = mkdtempSync(join(base, `${PREFIX}${pidNamespace()}-${process.pid}-`));
    } catch (err) {
      return { exchange: null, why: `${base}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
    const x = new DenseExchange(dir);
    try {
      writeFileSync(join(dir, "nonce"), x.nonce, { mode: 0o600 });
    } catch (err) {
      x.close();
      return { exchange: null, why: `${dir}/nonce: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
    return { exchange: x, why: "" };
  }

  /**
   * Removes exchange directories of this user under `base` whose process is
   * gone: named for a pid of this pid namespace that no process has (or this
   * process's own: a previous process of the same pid, pid 1 in containers).
   * Directories of other namespaces and users are left alone.
   */
  static sweepStale(base = EXCHANGE_BASE): number {
    let removed = 0;
    const ns = pidNamespace();
    for (const name of readdirSync(base)) {
      const m = DIR_NAME.exec(name);
      if (!m || m[1] !== ns) continue;
      const pid = Number(m[2]);
      if (pid !== process.pid && processExists(pid)) continue;
      const dir = join(base, name);
      try {
        if (statSync(dir).uid !== process.getuid?.()) continue;
        rmSync(dir, { recursive: true, force: true });
        removed++;
      } catch {
        // Removed meanwhile, or not ours to remove: left alone.
      }
    }
    return removed;
  }

  /** The name of the file holding the dense parameters as they are now, written if this version has none yet. */
  weightsFile(dense: DenseStore): string {
    const name = `w-${dense.version}`;
    if (this.writtenVersion === dense.version) return name;
    // The oldest file's pages take the new version (see writeDenseFile).
    const recycle = this.weightFiles.length >= WEIGHT_FILES ? this.weightFiles.shift()! : null;
    writeDenseFile(join(this.dir, name), dense.values, recycle ? join(this.dir, recycle) : null);
    this.writtenVersion = dense.version;
    this.weightFiles.push(name);
    this.sweepGradients();
    return name;
  }

  /**
   * Writes a training pull's rows to the next of the rank's rows files
   * (`r-RANK-N`, the one before last recycled); its name. The rank is the
   * pulling trainer's, checked by the caller, so the files stay two per
   * trainer. Throws where it cannot be written (the caller sends the rows in
   * the message).
   */
  rowsFile(rank: number, rows: Float32Array): string {
    const n = this.rowsWritten.get(rank) ?? 0;
    const name = `r-${rank}-${n}`;
    const recycle = n >= ROWS_FILES ? join(this.dir, `r-${rank}-${n - ROWS_FILES}`) : null;
    writeDenseFile(join(this.dir, name), [rows], recycle);
    this.rowsWritten.set(rank, n + 1);
    return name;
  }

  /**
   * At most once a minute: the rows files of ranks no live trainer holds
   * (left, or declared dead; a trainer that registers again gets a new rank).
   */
  sweepRows(isLive: (rank: number) => boolean, now = Date.now()): void {
    if (now - this.rowsSweptAt < GRADIENT_SWEEP_EVERY_MS) return;
    this.rowsSweptAt = now;
    for (const [rank, n] of this.rowsWritten) {
      if (isLive(rank)) continue;
      for (let k = Math.max(0, n - ROWS_FILES); k < n; k++) rmSync(join(this.dir, `r-${rank}-${k}`), { force: true });
      this.rowsWritten.delete(rank);
    }
  }

  /**
   * Reads a trainer's gradient file: one array per parameter, of `lengths`
   * elements each. The file stays: its trainer recycles it for a later push.
   * `what` names the push in errors (INVALID_ARGUMENT; the trainer then sends
   * the gradients in the message).
   */
  readGradients(name: string, rank: number, lengths: readonly number[], what: string): Float32Array[] {
    const m = GRADIENT_FILE.exec(name);
    if (!m) throw OrchestratorErrors.create("ORCH_ERR_BAD_DENSE_FILE", `${what}: dense gradients file "${printable(name, 80)}" is not a name trainers give them (g-<32 hex digits>-<number>)`);
    const owner = this.tokens.get(m[1]!);
    if (owner !== undefined && owner !== rank) throw OrchestratorErrors.create("ORCH_ERR_BAD_DENSE_FILE", `${what}: dense gradients file ${name} is rank ${owner}'s`);
    let grads: Float32Array[];
    try {
      grads = readDenseFile(join(this.dir, name), lengths);
    } catch (err) {
      if (SchemaErrors.is(err)) throw OrchestratorErrors.create("ORCH_ERR_BAD_DENSE_FILE", `${what}: ${(err as Error).message}`);
      throw err;
    }
    this.tokens.set(m[1]!, rank);
    return grads;
  }

  /** Removes the directory and everything in it. */
  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** At most once a minute (each time a weight file is written): gradient files no trainer has written for ten minutes (their trainers are gone). */
  sweepGradients(now = Date.now()): void {
    if (now - this.sweptAt < GRADIENT_SWEEP_EVERY_MS) return;
    this.sweptAt = now;
    for (const name of readdirSync(this.dir)) {
      const m = GRADIENT_FILE.exec(name);
      if (!m) continue;
      try {
        if (now - statSync(join(this.dir, name)).mtimeMs <= GRADIENT_FILE_MAX_AGE_MS) continue;
        rmSync(join(this.dir, name), { force: true });
        this.tokens.delete(m[1]!);
      } catch {
        // Gone meanwhile.
      }
    }
  }
}

/** This process's pid namespace (its inode), so a sweep judges only pids it can see; "0" where /proc does not say. */
function pidNamespace(): string {
  try {
    return /\[(\d+)\]/.exec(readlinkSync("/proc/self/ns/pid"))?.[1] ?? "0";
  } catch {
    return "0";
  }
}
