import { closeSync, openSync, readFileSync, rmSync, statSync, utimesSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { processExists, processStartTime } from "./process-exists.js";

/** A live holder touches its lock this often... */
const REFRESH_MS = 10_000;
/** ...so a lock from another machine (a shared volume) untouched this long is a process that is gone. */
export const STALE_LOCK_MS = 60_000;
/** A file without a holder's record is a writer between its create and its write only this soon after: later it is debris. */
const WRITING_MS = 5_000;

interface Holder {
  pid: number;
  host: string;
  /** /proc start time of the pid: with it a pid reused by another process is told apart. */
  start: string | null;
  since: string;
}

/**
 * What `ProcessLock.acquire` found: the lock, or who holds it, in words, and
 * for a holder known only by its file's age (another machine), in how many
 * ms it counts as gone unless it touches the file again (`seen`: the file
 * then, to give the next look after the wait); `unwritten`: the file holds
 * no holder's record (yet).
 */
export type LockResult =
  | { lock: ProcessLock; heldBy?: undefined; goneInMs?: undefined; unwritten?: undefined; seen?: undefined }
  | { lock?: undefined; heldBy: string; goneInMs?: number; unwritten?: boolean; seen?: LockSeen };

/** A lock file as a look found it: a holder known only by its file that leaves it so for the wait is gone. */
export interface LockSeen {
  text: string;
  mtimeMs: number;
}

/**
 * A file that says one process at a time does something (writes a job's
 * checkpoints, a run's logs). A holder killed with -9 leaves the file: on
 * the same machine it is taken over as soon as that process is gone (its pid
 * and start time tell), from another machine once it has not been touched
 * for STALE_LOCK_MS. The file is removed when the holder exits.
 */
/** How a held lock was lost: `why` in words; `takenOver` when another process holds it now (else its file is gone or unreadable). */
export type LockLost = (why: string, takenOver: boolean) => void;

export class ProcessLock {
  private timer: NodeJS.Timeout | null = null;
  private readonly me: Holder;

  private constructor(
    readonly path: string,
    private readonly onLost: LockLost,
  ) {
    this.me = { pid: process.pid, host: hostname(), start: processStartTime(process.pid), since: new Date().toISOString() };
  }

  /**
   * Takes the lock at `path` (its directory must exist), or says which live
   * process holds it. Errors creating the file are thrown as they come.
   * `onLost` hears if another process takes the lock over later (this one
   * was stopped past the stale time), or the file was removed.
   */
  static acquire(path: string, onLost: LockLost = () => {}, seen?: LockSeen): LockResult {
    const lock = new ProcessLock(path, onLost);
    for (let attempt = 0; attempt < 2; attempt++) {
      if (lock.create()) return { lock };
      const held = lock.liveHolder(seen);
      if (held) return held;
      // The holder is gone: its file goes, and the exclusive create decides between processes taking it over at once.
      rmSync(path, { force: true });
    }
    return { heldBy: "another process, which took it over at the same moment" };
  }

  private create(): boolean {
    let fd: number;
    try {
      fd = openSync(this.path, "wx", 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    }
    try {
      writeSync(fd, `${JSON.stringify(this.me)}\n`);
    } finally {
      closeSync(fd);
    }
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.timer.unref();
    process.on("exit", this.release);
    return true;
  }

  /**
   * Who holds the lock, if that process is still there; null if it is gone. A holder known only by its file (another
   * machine's, or none named) is gone once its file is as `seen` found it before a wait (a clock ahead of this one
   * cannot keep it held).
   */
  private liveHolder(seen?: LockSeen): { heldBy: string; goneInMs?: number; unwritten?: boolean; seen?: LockSeen } | null {
    let text: string;
    let touched: number;
    try {
      text = readFileSync(this.path, "utf8");
      touched = statSync(this.path).mtimeMs;
    } catch {
      return null;
    }
    // The file's age bounds each wait (a clock ahead on the writer's machine does not stretch it).
    const left = (ms: number) => Math.min(ms, Math.ceil(touched + ms - Date.now()));
    const untouched = seen !== undefined && seen.text === text && seen.mtimeMs === touched;
    const now: LockSeen = { text, mtimeMs: touched };
    const h = holderIn(text);
    if (!h) {
      // Not (yet) a holder's record: its writer is between the create and the write now, or the file is debris (a writer
      // killed between them, an emptied or overwritten file), which nobody would touch again.
      const writingMs = left(WRITING_MS);
      return writingMs > 0 && !untouched ? { heldBy: `a process writing ${this.path} now`, goneInMs: writingMs, unwritten: true, seen: now } : null;
    }
    const goneInMs = untouched ? 0 : left(STALE_LOCK_MS);
    const heldBy = `process ${h.pid} on ${h.host} (since ${h.since})`;
    if (h.host === this.me.host && typeof h.pid === "number") {
      if (h.pid === process.pid || !processExists(h.pid)) return null;
      if (h.start) {
        // A start time that cannot be read now (/proc hidden) cannot tell a reused pid: the live pid holds it.
        const start = processStartTime(h.pid);
        return start !== null && start !== h.start ? null : { heldBy };
      }
      // A record without a start time: a live holder touches its file every REFRESH_MS, so one left untouched for
      // STALE_LOCK_MS is another process that came to have the pid.
    }
    return goneInMs > 0 ? { heldBy, goneInMs, seen: now } : null;
  }

  /** Touches the file, so other machines see the holder lives; notices a takeover. */
  private refresh(): void {
    try {
      const now = JSON.parse(readFileSync(this.path, "utf8")) as Partial<Holder>;
      if (now.pid !== this.me.pid || now.host !== this.me.host) {
        this.stop();
        this.onLost(`process ${now.pid} on ${now.host} took over ${this.path}`, true);
        return;
      }
      const t = new Date();
      utimesSync(this.path, t, t);
    } catch (err) {
      this.stop();
      this.onLost(`${this.path} is gone or unreadable: ${(err as Error).message}`, false);
    }
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    process.off("exit", this.release);
  }

  /** Removes the file if it is still this process's. */
  readonly release = (): void => {
    this.stop();
    try {
      const now = JSON.parse(readFileSync(this.path, "utf8")) as Partial<Holder>;
      if (now.pid === this.me.pid && now.host === this.me.host) rmSync(this.path, { force: true });
    } catch {
      // already gone, or another's: nothing of this process's to remove
    }
  };
}

/** The holder's record a lock file holds, or null for anything else (empty, cut short, another file's text). */
function holderIn(text: string): Partial<Holder> | null {
  try {
    const h = JSON.parse(text) as unknown;
    if (h && typeof h === "object" && typeof (h as Holder).pid === "number" && typeof (h as Holder).host === "string") return h as Partial<Holder>;
  } catch {
    // not JSON
  }
  return null;
}
