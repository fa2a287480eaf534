import { spawnSync } from "node:child_process";
import { mkdtempSync, openSync, closeSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { exitReason } from "../src/launcher/log-tail.js";

const dir = mkdtempSync(join(tmpdir(), "exit-reason-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const kit = pathToFileURL(join(import.meta.dirname, "../../kit/dist/index.js")).href;

/** Runs a module's source in a real Node process with both output streams in a log file, as the launcher does; returns the log's path. */
function runLogged(name: string, source: string): { log: string; status: number | null } {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, "w");
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", source], { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  return { log, status: r.status };
}

describe("why a process exited, from its log", () => {
  it("an error a service did not expect is named by its one line, not by the last frame of the stack printed above it", () => {
    const { log, status } = runLogged("internal", `
      import { runMain } from ${JSON.stringify(kit)};
      function forward(params) { return params.missing.rank; }
      runMain("pangea-trainer", async () => { console.log('{"level":"info","msg":"step 1"}'); forward({}); });
    `);
    expect(status).toBe(1);
    expect(exitReason(log)).toMatch(/^pangea-trainer: internal error: TypeError: Cannot read properties of undefined \(reading 'rank'\) \(its stack is above\)$/);
  });

  it("an error Node reports itself (thrown outside the service's main) is named by its error line, not Node's version line", () => {
    const { log, status } = runLogged("uncaught", `setTimeout(() => { throw new RangeError("offset 12 is out of range"); }, 0);`);
    expect(status).toBe(1);
    expect(exitReason(log)).toBe("RangeError: offset 12 is out of range");
  });

  it("a usage error's reason is the line before its pointer to --help", () => {
    const { log, status } = runLogged("usage", `
      import { runMain, UsageError } from ${JSON.stringify(kit)};
      runMain("pangea-compute", async () => { throw new UsageError("--batch-size: expected a whole number from 1 to 1048576, got 2.5"); }, () => "usage");
    `);
    expect(status).toBe(2);
    expect(exitReason(log)).toBe("pangea-compute: --batch-size: expected a whole number from 1 to 1048576, got 2.5");
  });

  it("a log that ends in ordinary lines gives its last line", () => {
    const { log } = runLogged("plain", `console.log("first"); console.log("stopped after 3 steps");`);
    expect(exitReason(log)).toBe("stopped after 3 steps");
  });
});
