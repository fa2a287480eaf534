import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ENTRY, ROOT, lastLine, runNode, waitFor } from "../support/processes.js";
import { startService, type RunningService } from "../support/service.js";

/**
 * One run per job's checkpoints and per log directory: a second orchestrator
 * of a --job-id whose orchestrator lives would prune and overwrite its
 * checkpoints, a second `pangea run` into the same --log-dir would truncate
 * the first's logs. Both refuse with one line naming the process; a holder
 * killed with -9 leaves its lock behind, and the next start takes it over.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-lock-e2e-"));
const started: RunningService[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) await s.stop();
});

const orchestratorArgs = (root: string) => ["--host", "127.0.0.1", "--port", "0", "--trainers", "1", "--checkpoint-dir", root, "--job-id", "shared", "--resume", "--register-timeout-ms", "600000"];

/** Job `jobId`'s lock as a process on another machine left it, last touched `ageMs` ago; returns its path. */
function remoteLock(root: string, jobId: string, ageMs: number): string {
  const lock = join(root, jobId, "orchestrator.lock");
  mkdirSync(dirname(lock), { recursive: true });
  writeFileSync(lock, JSON.stringify({ pid: 1, host: "gone-pod-7f9c", start: "12", since: "2026-01-01T00:00:00.000Z" }));
  const t = new Date(Date.now() - ageMs);
  utimesSync(lock, t, t);
  return lock;
}

describe("one run per job and per log directory", () => {
  it("a second orchestrator of a live job exits 1 naming the first; after kill -9 of the first, a restart takes the job over", async () => {
    const root = join(tmp, "ck");
    const first = await startService(ENTRY.orchestrator, orchestratorArgs(root));
    started.push(first);
    const lock = join(root, "shared", "orchestrator.lock");
    expect(JSON.parse(readFileSync(lock, "utf8")).pid).toBe(first.child.pid);
    const second = await runNode(ENTRY.orchestrator, orchestratorArgs(root), { timeoutMs: 30_000 });
    expect(second.code).toBe(1);
    expect(lastLine(second.stderr)).toMatch(
      new RegExp(`^pangea-orchestrator: error ORCH_ERR_JOB_IN_USE: job shared's checkpoints are in use by process ${first.child.pid} on \\S+ \\(since [0-9T:.Z-]+\\); a second run of the same --job-id would overwrite them \\(wait for that run to end or stop it, or give another --job-id; ${lock} goes when it ends\\)$`),
    );
    await first.stop(); // SIGKILL: the lock stays behind
    expect(existsSync(lock)).toBe(true);
    const restarted = await startService(ENTRY.orchestrator, orchestratorArgs(root));
    started.push(restarted);
    expect(JSON.parse(readFileSync(lock, "utf8")).pid).toBe(restarted.child.pid);
    // An orchestrator that ends on its own (SIGTERM) removes its lock.
    restarted.child.kill("SIGTERM");
    await restarted.exited;
    expect(existsSync(lock)).toBe(false);
  }, 90_000);

  it("a lock from another machine (a recreated container's old host name) is waited out once it stops being touched, then taken", async () => {
    const root = join(tmp, "remote");
    // Last touched 50 s ago: 10 s before the holder counts as gone (3 s had been less than a loaded machine's start-up).
    const lock = remoteLock(root, "shared", 50_000);
    const begun = Date.now();
    const s = await startService(ENTRY.orchestrator, orchestratorArgs(root));
    started.push(s);
    expect(Date.now() - begun).toBeGreaterThan(3_000);
    expect(s.output()).toMatch(/the job's lock is held from another machine, by process 1 on gone-pod-7f9c \(since 2026-01-01T00:00:00\.000Z\); waiting \d+ s to see whether that process still touches it/);
    expect(s.output()).toContain('"holder":"process 1 on gone-pod-7f9c (since 2026-01-01T00:00:00.000Z)"');
    expect(JSON.parse(readFileSync(lock, "utf8")).pid).toBe(s.child.pid);
  }, 90_000);

  it("a lock file with no holder's record in it (emptied, overwritten) is taken at once when old, after a few seconds when new", async () => {
    const root = join(tmp, "debris");
    const lock = remoteLock(root, "shared", 0);
    writeFileSync(lock, "not a lock\n");
    // 20 s old: debris, not a writer between its create and its write (it was waited out until 60 s old, as another machine's).
    const t = new Date(Date.now() - 20_000);
    utimesSync(lock, t, t);
    const begunOld = Date.now();
    const old = await startService(ENTRY.orchestrator, orchestratorArgs(root));
    started.push(old);
    expect(Date.now() - begunOld).toBeLessThan(10_000);
    expect(old.output()).not.toContain("waiting");
    expect(JSON.parse(readFileSync(lock, "utf8")).pid).toBe(old.child.pid);
    await old.stop();
    // Written a moment ago, it may be a process between its create and its write: a few seconds' wait, said (it was a minute's, as another machine's).
    writeFileSync(lock, "");
    const begun = Date.now();
    const recent = await startService(ENTRY.orchestrator, orchestratorArgs(root));
    started.push(recent);
    expect(Date.now() - begun).toBeLessThan(15_000);
    expect(recent.output()).toMatch(new RegExp(`the job's lock ${lock} names no holder yet; waiting [1-6] s for a process writing it now`));
    expect(JSON.parse(readFileSync(lock, "utf8")).pid).toBe(recent.child.pid);
  }, 90_000);

  it("pangea run whose orchestrator waits out such a lock says so after 5 s (it sat silent for a minute)", async () => {
    const root = join(tmp, "remote-run");
    // 15 s before the holder counts as gone: pangea run's own start and its orchestrator's fit in it on a loaded machine.
    remoteLock(root, "waited", 45_000);
    const r = await runNode(ENTRY.cli, ["run", "--trainers", "1", "--steps", "2", "--batch-size", "64", "--eval-records", "100", "--job-id", "waited", "--checkpoint-dir", root, "--log-dir", join(tmp, "remote-run-logs")], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`orchestrator is not serving yet after 5 s: the job's lock is held from another machine, by process 1 on gone-pod-7f9c \\(since 2026-01-01T00:00:00\\.000Z\\); waiting \\d+ s to see whether that process still touches it \\(log: ${join(tmp, "remote-run-logs", "orchestrator.log")}\\)`));
  }, 150_000);

  it("a second pangea run into the log directory of a running one exits 1 before starting anything", async () => {
    const logs = join(tmp, "logs");
    const args = ["run", "--trainers", "1", "--steps", "100000", "--batch-size", "64", "--eval-records", "100", "--log-dir", logs, "--checkpoint-dir", join(tmp, "ck2")];
    const first = spawn(process.execPath, [ENTRY.cli, ...args], { cwd: ROOT, stdio: "ignore" });
    try {
      await waitFor("the first run to start its orchestrator", async () => existsSync(join(logs, "orchestrator.log")), 30_000);
      const before = readFileSync(join(logs, "orchestrator.log"));
      const second = await runNode(ENTRY.cli, args, { timeoutMs: 30_000 });
      expect(second.code).toBe(1);
      expect(lastLine(second.stderr)).toMatch(new RegExp(`^pangea run: another pangea run \\(process ${first.pid} on \\S+ \\(since [^)]+\\)\\) writes its logs to ${logs}; wait for it to end, or give this one another --log-dir$`));
      expect(second.stdout).toBe("");
      // The first run's log was not truncated.
      expect(readFileSync(join(logs, "orchestrator.log")).subarray(0, before.length)).toEqual(before);
    } finally {
      first.kill("SIGTERM");
      await new Promise((r) => first.once("exit", r));
    }
    expect(existsSync(join(logs, "run.lock"))).toBe(false);
  }, 90_000);
});
