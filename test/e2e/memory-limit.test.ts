import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENTRY, lastLine, runNode } from "../support/processes.js";

/**
 * --max-embedding-bytes reached mid-job: the job fails with the limit as its
 * one-line reason, the trainers exit instead of registering again forever,
 * and `pangea run` exits 1.
 */
describe("the embedding memory limit", () => {
  it.each([
    ["one parameter server", 1],
    ["two parameter-server shards", 2],
  ])("with %s: fails the job naming ORCH_ERR_MEMORY_LIMIT; trainers exit; pangea run exits 1", async (_what, shards) => {
    const tmp = mkdtempSync(join(tmpdir(), "pangea-memlimit-"));
    const logs = join(tmp, "logs");
    const r = await runNode(ENTRY.cli, ["run", "--steps", "200", "--batch-size", "256", "--eval-records", "1000", "--ps-shards", String(shards),
      "--max-embedding-bytes", "1000000", "--log-dir", logs, "--checkpoint-dir", join(tmp, "ckpt")], { timeoutMs: 80_000, stopSignal: "SIGTERM" });
    expect(r.code, r.stderr).toBe(1);
    const line = lastLine(r.stderr);
    if (shards === 1) expect(line).toMatch(/^pangea run: job failed: ORCH_ERR_MEMORY_LIMIT: embedding tables would exceed the memory limit of 1000000 bytes \(now \d+, slot \d+(?: needs \d+ more|'s new table needs \d+)\)/);
    // With shards, whichever parameter server fills up first is named (shard 1 tells the orchestrator why before it ends).
    else expect(line).toMatch(/^pangea run: job failed: ORCH_ERR_MEMORY_LIMIT: parameter-server shard (?:shard-1 \(index 1\)|0 \(the orchestrator\)) at step \d+ of 200 failed: embedding tables would exceed the memory limit of 1000000 bytes/);
    expect(r.ms).toBeLessThan(80_000);
    for (const name of readdirSync(logs).filter((n) => n.startsWith("trainer-"))) {
      const text = readFileSync(join(logs, name), "utf8");
      expect(text, name).not.toContain("registering again");
    }
  }, 110_000);
});
