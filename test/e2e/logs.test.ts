import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { ENTRY, runNode } from "../support/processes.js";

/** Logs: JSON lines with service and job fields for machines; readable lines on a terminal. */
describe("logs", () => {
  const args = ["--port", "0", "--trainers", "1", "--register-timeout-ms", "600", "--job-id", "log-job"];

  it("are one JSON object per line on stderr (not a terminal), each naming the service and the job", async () => {
    // The orchestrator keeps serving after its job failed: stop it once the timeout's error is out.
    const r = await runNode(ENTRY.orchestrator, args, { timeoutMs: 5_000, env: { PANGEA_LOG_FORMAT: "" } });
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("{"));
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ service: "orchestrator", job: "log-job" });
    expect(lines.map((l) => JSON.parse(l).msg)).toContain("orchestrator serving");
  });

  it.runIf(spawnSync("sh", ["-c", "command -v script"]).status === 0)("are human-readable lines when stderr is a terminal", () => {
    // util-linux's script runs the command on a pseudo-terminal.
    const r = spawnSync("script", ["-qec", `${process.execPath} ${ENTRY.orchestrator} ${args.join(" ")}`, "/dev/null"], { encoding: "utf8", timeout: 5_000 });
    const text = r.stdout.replace(/\u001b\[[0-9;]*m/g, "");
    expect(text).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: orchestrator serving \{.*"job":"log-job"/m);
    expect(text).toMatch(/ERROR: timed out after 1s waiting for workers/);
    expect(text.split("\n").filter((l) => l.startsWith('{"level"'))).toEqual([]);
  });
});
