import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENTRY, runNode, waitFor } from "../support/processes.js";

/**
 * Two jobs in a row sync into one running serving (the user trial's
 * repro): each orchestrator process starts its sequence at 1 under the same
 * sender name, and the second job's rows are applied all the same, in
 * pangea_serving_sync_rows_total and in the summary, with no push ignored.
 */
const metric = async (rest: string, name: string) => {
  const text = await (await fetch(`http://${rest}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
};

describe("parameter sync from successive jobs", () => {
  it("a second job's rows reach serving though its sequence starts at 1 again", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "pangea-sync-runs-"));
    const small = ["--trainers", "1", "--batch-size", "64", "--eval-records", "200", "--backend", "cpu", "--checkpoint-dir", join(tmp, "ckpt"), "--log-dir", join(tmp, "logs")];
    const first = await runNode(ENTRY.cli, ["run", "--json", "--steps", "10", "--job-id", "base", ...small], { timeoutMs: 120_000, stopSignal: "SIGTERM" });
    expect(first.code, first.stderr).toBe(0);
    const checkpoint = (JSON.parse(first.stdout.trim().split("\n").at(-1)!) as { checkpointPath: string }).checkpointPath;
    const base = join(tmp, "models");
    const exp = await runNode(ENTRY.cli, ["export", "--checkpoint", checkpoint, "--out", base]);
    expect(exp.code, exp.stderr).toBe(0);
    const serve = spawn(process.execPath, [ENTRY.cli, "serve", "--model-base-path", base, "--port", "0", "--rest-port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    serve.stdout!.on("data", (d: Buffer) => (out += d));
    serve.stderr!.on("data", (d: Buffer) => (out += d));
    const served = new Promise((resolve) => serve.once("exit", resolve));
    try {
      const ready = await waitFor("serving's ready line", async () => {
        const line = out.split("\n").find((l) => l.startsWith('{"ready":"serving"'));
        return line ? (JSON.parse(line) as { address: string; rest: string }) : null;
      }, 20_000);
      const synced = async (jobId: string) => {
        const r = await runNode(
          ENTRY.cli,
          ["run", "--steps", "30", "--job-id", jobId, "--restore-from", checkpoint, "--serving-sync", ready.address, "--sync-interval-seconds", "1", "--dense-sync-interval-seconds", "2", ...small],
          { timeoutMs: 120_000, stopSignal: "SIGTERM" },
        );
        expect(r.code, r.stderr).toBe(0);
        const line = r.stdout.split("\n").find((l) => l.startsWith("  parameter sync"));
        // No "; N pushes ignored ..." after the version: every push was applied.
        expect(line, r.stdout).toMatch(/^ {2}parameter sync {4}[\d,]+ embedding rows pushed to serving; serving acknowledged version 1$/);
      };
      await synced("first");
      // The job's final push is sent as it ends; wait for it to land.
      await waitFor("the first job's rows in serving", async () => (await metric(ready.rest, "pangea_serving_sync_rows_total")) > 0, 10_000, 100);
      await new Promise((r) => setTimeout(r, 1_000));
      const afterFirst = await metric(ready.rest, "pangea_serving_sync_rows_total");
      await synced("second");
      await waitFor("the second job's rows in serving", async () => (await metric(ready.rest, "pangea_serving_sync_rows_total")) > afterFirst, 10_000, 100);
      expect(await metric(ready.rest, "pangea_serving_sync_ignored_total")).toBe(0);
      expect(await metric(ready.rest, "pangea_serving_sync_refused_total")).toBe(0);
    } finally {
      serve.kill("SIGTERM");
      await Promise.race([served, new Promise((r) => setTimeout(r, 5_000))]);
      serve.kill("SIGKILL");
    }
  }, 300_000);
});
