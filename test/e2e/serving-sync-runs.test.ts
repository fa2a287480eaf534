import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { inputsAcrossTables } from "../support/version-inputs.js";
import { ENTRY, runNode, waitFor } from "../support/processes.js";

/**
 * Two jobs in a row sync into one running serving (the user trial's
 * repro): each orchestrator process starts its sequence at 1 under the same
 * sender name, and the second job's rows are applied all the same, in
 * pangea_serving_sync_rows_total and in the summary, with no push ignored.
 * And a version serving loads mid-job (helper-78's repro was a restarted
 * serving) is sent every row again.
 */
const metric = async (rest: string, name: string) => {
  const text = await (await fetch(`http://${rest}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
};

/** A job's checkpoint exported as version 1 and served (`serveArgs` added); `body` runs while serving does. */
async function withServing(prefix: string, serveArgs: string[], body: (ctx: { tmp: string; small: string[]; checkpoint: string; base: string; ready: { address: string; rest: string }; output: () => string }) => Promise<void>): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), prefix));
  const small = ["--trainers", "1", "--batch-size", "64", "--eval-records", "200", "--checkpoint-dir", join(tmp, "ckpt")];
  const first = await runNode(ENTRY.cli, ["run", "--json", "--steps", "10", "--job-id", "base", "--log-dir", join(tmp, "base-logs"), ...small], { timeoutMs: 120_000, stopSignal: "SIGTERM" });
  expect(first.code, first.stderr).toBe(0);
  const checkpoint = (JSON.parse(first.stdout.trim().split("\n").at(-1)!) as { checkpointPath: string }).checkpointPath;
  const base = join(tmp, "models");
  const exp = await runNode(ENTRY.cli, ["export", "--checkpoint", checkpoint, "--out", base]);
  expect(exp.code, exp.stderr).toBe(0);
  const serve = spawn(process.execPath, [ENTRY.cli, "serve", "--model-base-path", base, "--port", "0", "--rest-port", "0", ...serveArgs], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  serve.stdout!.on("data", (d: Buffer) => (out += d));
  serve.stderr!.on("data", (d: Buffer) => (out += d));
  const served = new Promise((resolve) => serve.once("exit", resolve));
  try {
    const ready = await waitFor("serving's ready line", async () => {
      const line = out.split("\n").find((l) => l.startsWith('{"ready":"serving"'));
      return line ? (JSON.parse(line) as { address: string; rest: string }) : null;
    }, 20_000);
    await body({ tmp, small, checkpoint, base, ready, output: () => out });
  } finally {
    serve.kill("SIGTERM");
    await Promise.race([served, new Promise((r) => setTimeout(r, 5_000))]);
    serve.kill("SIGKILL");
  }
}

describe("parameter sync from successive jobs", () => {
  it("a second job's rows reach serving though its sequence starts at 1 again", async () => {
    await withServing("pangea-sync-runs-", [], async ({ tmp, small, checkpoint, ready, output }) => {
      const synced = async (jobId: string) => {
        const r = await runNode(
          ENTRY.cli,
          ["run", "--steps", "30", "--job-id", jobId, "--restore-from", checkpoint, "--serving-sync", ready.address, "--sync-interval-seconds", "1", "--dense-sync-interval-seconds", "2", "--log-dir", join(tmp, jobId), ...small],
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
      // Each job's start of updates is a line in serving's log (the updates themselves are debug lines).
      const began = output().split("\n").filter((l) => l.includes("parameter sync: a sender run began updating the served version")).map((l) => JSON.parse(l) as { run: string; version: number });
      expect(began.length).toBe(2);
      expect(new Set(began.map((l) => l.run)).size).toBe(2);
      expect(began.map((l) => l.version)).toEqual([1, 1]);
    });
  }, 300_000);

  it("a version serving loads mid-job holds none of the pushes before it: the job sends it every row again, and at the end it predicts what the final checkpoint's export does", async () => {
    await withServing("pangea-sync-reload-", ["--poll-seconds", "0.3"], async ({ tmp, small, checkpoint, base, ready, output }) => {
      const logs = join(tmp, "logs");
      const job = runNode(
        ENTRY.cli,
        ["run", "--json", "--steps", "600", "--job-id", "synced", "--restore-from", checkpoint, "--serving-sync", ready.address, "--sync-interval-seconds", "1", "--dense-sync-interval-seconds", "1", "--log-dir", logs, ...small],
        { timeoutMs: 240_000, stopSignal: "SIGTERM" },
      );
      await waitFor("the job's first push in serving", async () => (await metric(ready.rest, "pangea_serving_sync_rows_total")) > 0, 60_000, 100);
      // Version 2 is loaded from disk mid-job: the rows pushed to version 1 are not in it.
      expect((await runNode(ENTRY.cli, ["export", "--checkpoint", checkpoint, "--out", base])).code).toBe(0);
      const servedVersion = async () => ((await (await fetch(`http://${ready.rest}/v1/models/pangea`)).json()) as { model_version_status: { version: string; state: string }[] }).model_version_status;
      await waitFor("version 2 to load", async () => (await servedVersion()).some((v) => v.version === "2" && v.state === "AVAILABLE"), 20_000, 100);
      const r = await job;
      expect(r.code, r.stderr).toBe(0);
      const log = readFileSync(join(logs, "orchestrator.log"), "utf8");
      expect(log).toContain("serving holds another load of its model than earlier parameter sync pushes went to");
      expect(log).toContain("parameter sync sent serving every row again");
      // Serving's log says the job's updates went on into the version loaded mid-job.
      const began = output().split("\n").filter((l) => l.includes("parameter sync: a sender run began updating the served version")).map((l) => (JSON.parse(l) as { version: number }).version);
      expect(began).toEqual([1, 2]);
      const final = (JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { checkpointPath: string }).checkpointPath;
      expect((await runNode(ENTRY.cli, ["export", "--checkpoint", final, "--out", base, "--version", "3"])).code).toBe(0);
      await waitFor("version 3 to load", async () => (await servedVersion()).some((v) => v.version === "3" && v.state === "AVAILABLE"), 20_000, 100);
      // Examples made of ids across the final tables (the rows trained before version 2 loaded among them).
      const body = inputsAcrossTables(join(base, "3"), 64);
      const predict = async (version: number) => {
        const res = await fetch(`http://${ready.rest}/v1/models/pangea/versions/${version}:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
        expect(res.status).toBe(200);
        return ((await res.json()) as { outputs: { probabilities: number[] } }).outputs.probabilities;
      };
      // The status says which loaded version parameter sync changed since its load, and which is as exported.
      const status = await servedVersion();
      const sync = (status.find((v) => v.version === "2") as { parameter_sync?: { rows_applied: number; last_sender: string } }).parameter_sync;
      expect(sync?.rows_applied).toBeGreaterThan(0);
      expect(sync?.last_sender).toMatch(/ \(run [^)]+\)$/);
      expect(status.find((v) => v.version === "3")).not.toHaveProperty("parameter_sync");
      const exported = await predict(3);
      const synced = await predict(2);
      synced.forEach((x, i) => expect(x, `example ${i}`).toBeCloseTo(exported[i]!, 5));
    });
  }, 300_000);
});
