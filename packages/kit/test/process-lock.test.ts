import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ProcessLock, STALE_LOCK_MS } from "../src/process-lock.js";
import { processStartTime } from "../src/process-exists.js";

let dir: string;
let path: string;
const children: ChildProcess[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pangea-lock-"));
  path = join(dir, "x.lock");
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** A live process of this machine, and the record a holder of that pid writes. */
async function otherProcess() {
  const child = spawn("sleep", ["60"]);
  children.push(child);
  await new Promise((r) => child.once("spawn", r));
  const record = { pid: child.pid!, host: hostname(), start: processStartTime(child.pid!), since: "2026-01-01T00:00:00.000Z" };
  return { child, record };
}

const aged = (ms: number) => {
  const t = new Date(Date.now() - ms);
  utimesSync(path, t, t);
};

describe("ProcessLock", () => {
  it("takes a free lock, writes its holder, and removes the file on release", () => {
    const { lock, heldBy } = ProcessLock.acquire(path);
    expect(heldBy).toBeUndefined();
    expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject({ pid: process.pid, host: hostname() });
    lock!.release();
    expect(existsSync(path)).toBe(false);
  });

  it("a live process of this machine holds it, however old the file; once that process is killed the lock is taken over", async () => {
    const { child, record } = await otherProcess();
    writeFileSync(path, JSON.stringify(record));
    aged(10 * STALE_LOCK_MS);
    expect(ProcessLock.acquire(path)).toEqual({ heldBy: `process ${child.pid} on ${hostname()} (since 2026-01-01T00:00:00.000Z)` });
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const { lock } = ProcessLock.acquire(path);
    expect(JSON.parse(readFileSync(path, "utf8")).pid).toBe(process.pid);
    lock!.release();
  });

  it("a pid that lives but started at another time is another process reusing the pid: the lock is free", async () => {
    const { record } = await otherProcess();
    writeFileSync(path, JSON.stringify({ ...record, start: "1" }));
    expect(ProcessLock.acquire(path).lock).toBeDefined();
  });

  it("a live pid of this machine in a record without its start time holds it while the file is touched, not after STALE_LOCK_MS (the pid may be another's now)", async () => {
    const { child, record } = await otherProcess();
    writeFileSync(path, JSON.stringify({ ...record, start: null }));
    aged(20_000);
    const held = ProcessLock.acquire(path);
    expect(held.heldBy).toBe(`process ${child.pid} on ${hostname()} (since 2026-01-01T00:00:00.000Z)`);
    expect(held.goneInMs).toBeLessThanOrEqual(STALE_LOCK_MS - 20_000);
    aged(STALE_LOCK_MS + 1_000);
    const { lock } = ProcessLock.acquire(path);
    expect(JSON.parse(readFileSync(path, "utf8")).pid).toBe(process.pid);
    lock!.release();
  });

  it("another machine's holder counts while it touches the file, not after STALE_LOCK_MS", () => {
    writeFileSync(path, JSON.stringify({ pid: 1, host: "elsewhere", start: "5", since: "t" }));
    aged(20_000);
    const held = ProcessLock.acquire(path);
    expect(held.heldBy).toBe("process 1 on elsewhere (since t)");
    // How long it has left to show it lives: the stale time less the file's age (a second's slack for the clock).
    expect(held.goneInMs).toBeGreaterThan(STALE_LOCK_MS - 21_000);
    expect(held.goneInMs).toBeLessThanOrEqual(STALE_LOCK_MS - 20_000);
    aged(STALE_LOCK_MS + 1_000);
    expect(ProcessLock.acquire(path).lock).toBeDefined();
  });

  it("a file with no holder's record in it: a writer between create and write for 5 s, debris after (not a minute's wait)", () => {
    for (const text of ["", "garbage\n", "null", '{"pid":"7"}', "[1]"]) {
      writeFileSync(path, text);
      const held = ProcessLock.acquire(path);
      expect(held.heldBy, text).toBe(`a process writing ${path} now`);
      expect(held.goneInMs, text).toBeLessThanOrEqual(5_000);
      expect(held.goneInMs, text).toBeGreaterThan(4_000);
      aged(6_000);
      const taken = ProcessLock.acquire(path);
      expect(taken.lock, text).toBeDefined();
      taken.lock!.release();
    }
  });

  it("a lock file written by a clock ahead of this one waits no longer than the stale time, and is taken if left as it was", () => {
    writeFileSync(path, JSON.stringify({ pid: 1, host: "elsewhere", start: "5", since: "t" }));
    aged(-3_600_000);
    const first = ProcessLock.acquire(path);
    expect(first.goneInMs).toBe(STALE_LOCK_MS);
    // Its time still says it is fresh after the wait; the file is as it was, so its holder did not touch it: gone.
    expect(ProcessLock.acquire(path).goneInMs).toBe(STALE_LOCK_MS);
    const taken = ProcessLock.acquire(path, () => {}, first.seen);
    expect(taken.lock).toBeDefined();
    taken.lock!.release();
  });

  it("a holder that touched its file during the wait still holds it; so does one whose record changed", () => {
    writeFileSync(path, JSON.stringify({ pid: 1, host: "elsewhere", start: "5", since: "t" }));
    aged(30_000);
    const first = ProcessLock.acquire(path);
    aged(0);
    expect(ProcessLock.acquire(path, () => {}, first.seen).heldBy).toBe("process 1 on elsewhere (since t)");
    writeFileSync(path, "");
    const unwritten = ProcessLock.acquire(path);
    expect(unwritten.unwritten).toBe(true);
    writeFileSync(path, JSON.stringify({ pid: 2, host: "elsewhere", start: "5", since: "u" }));
    expect(ProcessLock.acquire(path, () => {}, unwritten.seen).heldBy).toBe("process 2 on elsewhere (since u)");
  });

  it("a holder hears how it lost the lock: taken over by another process, or its file removed (the job's directory with it)", () => {
    vi.useFakeTimers();
    try {
      const heard: Array<[string, boolean]> = [];
      const taken = ProcessLock.acquire(path, (why, takenOver) => heard.push([why, takenOver])).lock!;
      writeFileSync(path, JSON.stringify({ pid: 1, host: "elsewhere", start: "5", since: "t" }));
      vi.advanceTimersByTime(10_000);
      taken.release();
      rmSync(path);
      ProcessLock.acquire(path, (why, takenOver) => heard.push([why, takenOver]));
      rmSync(dir, { recursive: true });
      vi.advanceTimersByTime(10_000);
      expect(heard).toEqual([[`process 1 on elsewhere took over ${path}`, true], [expect.stringMatching(new RegExp(`^${path} is gone or unreadable: ENOENT`)), false]]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("release leaves a lock another process took over in place", () => {
    const { lock } = ProcessLock.acquire(path);
    writeFileSync(path, JSON.stringify({ pid: 1, host: "elsewhere", start: "5", since: "t" }));
    lock!.release();
    expect(existsSync(path)).toBe(true);
  });
});
