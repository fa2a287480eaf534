import { spawn, spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { ENTRY } from "../support/processes.js";

/** Logs: JSON lines with service and job fields for machines; readable lines on a terminal. */
describe("logs", () => {
  const args = ["--port", "0", "--trainers", "1", "--register-timeout-ms", "600", "--job-id", "log-job"];

  /**
   * Runs a command until its output shows the job finished (the register
   * timeout failed it) and a moment after, then stops it with `signal`: the
   * orchestrator keeps serving after its job failed.
   */
  function outputUntilJobFinished(command: string, argv: string[], signal: NodeJS.Signals, env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      let stopping: NodeJS.Timeout | undefined;
      const seen = () => {
        if (!stopping && /job finished[^\n]*\n/.test(stdout + stderr)) stopping = setTimeout(() => child.kill(signal), 300);
      };
      child.stdout.on("data", (d: Buffer) => ((stdout += d), seen()));
      child.stderr.on("data", (d: Buffer) => ((stderr += d), seen()));
      const limit = setTimeout(() => child.kill("SIGKILL"), 20_000);
      child.on("error", reject);
      child.on("close", () => {
        clearTimeout(limit);
        clearTimeout(stopping);
        resolve({ stdout, stderr });
      });
    });
  }

  it("are one JSON object per line on stderr (not a terminal), each naming the service and the job", async () => {
    const r = await outputUntilJobFinished(process.execPath, [ENTRY.orchestrator, ...args], "SIGKILL", { PANGEA_LOG_FORMAT: "" });
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("{"));
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ service: "orchestrator", job: "log-job" });
    expect(lines.map((l) => JSON.parse(l).msg)).toContain("orchestrator serving");
  });

  it.runIf(spawnSync("sh", ["-c", "command -v script"]).status === 0)("are human-readable lines when stderr is a terminal", async () => {
    // util-linux's script runs the command on a pseudo-terminal.
    const r = await outputUntilJobFinished("script", ["-qec", `${process.execPath} ${ENTRY.orchestrator} ${args.join(" ")}`, "/dev/null"], "SIGTERM");
    const text = r.stdout.replace(/\u001b\[[0-9;]*m/g, "");
    expect(text).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: orchestrator serving \{.*"job":"log-job"/m);
    expect(text).toMatch(/ERROR: timed out after 600 ms waiting for workers/);
    expect(text.split("\n").filter((l) => l.startsWith('{"level"'))).toEqual([]);
  });
});
