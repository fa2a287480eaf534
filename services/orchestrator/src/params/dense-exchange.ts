import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readDenseFile, SchemaErrors, writeDenseFile } from "@pangea/schema";
import type { DenseStore } from "./dense-store.js";
import { OrchestratorErrors } from "../errors.js";

/** Where the exchange directory is made: tmpfs, so its files are memory and never reach a disk. */
export const EXCHANGE_BASE = "/dev/shm";
const PREFIX = "pangea-exchange-";
/** Weight files kept after a newer one is written: an async trainer may still be about to read one. */
const KEPT_WEIGHT_FILES = 4;
/** A gradient file's name, as trainers make it: their random token and a sequence number. Nothing else is read. */
const GRADIENT_FILE = /^g-[0-9a-f]{32}-[0-9]{1,15}$/;

/**
 * The dense exchange: the dense parameters and their gradients between this
 * parameter server and the trainers on its machine as files in a tmpfs
 * directory instead of inside the gRPC messages (a 2 MB tensor costs a
 * message several copies, HTTP/2 framing and reassembly on both sides; a file
 * is one copy in and one out).
 *
 * The directory is the server's own (mode 0700), so only processes of the
 * same user on the same machine can open it; its file `nonce` holds a random
 * value also sent in pull answers, so a trainer can tell it sees this
 * directory and not a namesake. Weight files (`w-VERSION`) are written once
 * per version of the parameters, when a trainer first asks for that version;
 * the last few are kept, and the oldest one's pages are recycled for the next
 * (writeDenseFile says how a reader tells). Gradient files are written by
 * trainers (two each, recycled in turn) and read here; only names of their
 * form are opened, inside this directory, without following links. The
 * directory goes with the process (`close`, on exit); one left by a process
 * killed outright is removed by the next server on the machine
 * (`sweepStale`).
 */
export class DenseExchange {
  readonly nonce = randomBytes(16).toString("hex");
  private readonly weightFiles: string[] = [];
  private writtenVersion = -1;

  private constructor(readonly dir: string) {
    writeFileSync(join(dir, "nonce"), this.nonce, { mode: 0o600 });
    writeFileSync(join(dir, "pid"), String(process.pid), { mode: 0o600 });
  }

  /** An exchange in a new directory under `base`, or null where `base` is not a writable directory. */
  static open(base = EXCHANGE_BASE): DenseExchange | null {
    let dir: string;
    try {
      if (!statSync(base).isDirectory()) return null;
      DenseExchange.sweepStale(base);
      dir = mkdtempSync(join(base, PREFIX));
    } catch {
      return null;
    }
    return new DenseExchange(dir);
  }

  /** Removes exchange directories of this user under `base` whose process is gone (killed before it could remove its own). */
  static sweepStale(base = EXCHANGE_BASE): number {
    let removed = 0;
    for (const name of readdirSync(base)) {
      if (!name.startsWith(PREFIX)) continue;
      const dir = join(base, name);
      try {
        if (statSync(dir).uid !== process.getuid?.()) continue;
        const pid = Number(readFileSync(join(dir, "pid"), "utf8"));
        if (Number.isInteger(pid) && pid > 0 && alive(pid)) continue;
        rmSync(dir, { recursive: true, force: true });
        removed++;
      } catch {
        // Another server's, half made, or removed meanwhile: left alone.
      }
    }
    return removed;
  }

  /** The name of the file holding the dense parameters as they are now, written if this version has none yet. */
  weightsFile(dense: DenseStore): string {
    const name = `w-${dense.version}`;
    if (this.writtenVersion === dense.version) return name;
    // The oldest kept file's pages take the new version (see writeDenseFile).
    const recycle = this.weightFiles.length >= KEPT_WEIGHT_FILES ? this.weightFiles.shift()! : null;
    writeDenseFile(join(this.dir, name), dense.values, recycle ? join(this.dir, recycle) : null);
    this.writtenVersion = dense.version;
    this.weightFiles.push(name);
    return name;
  }

  /**
   * Reads a trainer's gradient file: one array per parameter, of `lengths`
   * elements each. The file stays: its trainer recycles it for a later push.
   * `what` names the push in errors.
   */
  readGradients(name: string, lengths: readonly number[], what: string): Float32Array[] {
    if (!GRADIENT_FILE.test(name)) throw OrchestratorErrors.create("ORCH_ERR_BAD_GRADIENT", `${what}: dense gradients file "${name.slice(0, 80)}" is not a name trainers give them (g-<32 hex digits>-<number>)`);
    try {
      return readDenseFile(join(this.dir, name), lengths);
    } catch (err) {
      if (SchemaErrors.is(err)) throw OrchestratorErrors.create("ORCH_ERR_BAD_GRADIENT", `${what}: ${(err as Error).message}`);
      throw err;
    }
  }

  /** Removes the directory and everything in it. */
  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

