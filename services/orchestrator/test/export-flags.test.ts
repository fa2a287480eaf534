import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { ENTRY, runNode } from "../../../test/support/processes.js";

describe("--export-dir and --export-feature-list", () => {
  it("are taken together, on one parameter-server shard", () => {
    const c = loadConfig(["--export-dir", "/models/ctr", "--export-feature-list", "/data/features.json"], {});
    expect(c?.exportDir).toBe("/models/ctr");
    expect(c?.exportFeatureList).toBe("/data/features.json");
    expect(loadConfig([], { PANGEA_EXPORT_DIR: "/m" })?.exportDir).toBe("/m");
  });

  it("refuse a feature list without an export directory, and exports during a sharded job, naming the flag", () => {
    expect(() => loadConfig(["--export-feature-list", "f.json"], {})).toThrow("invalid --export-feature-list: is copied into the versions --export-dir writes; give --export-dir too");
    expect(() => loadConfig(["--export-dir", "/m", "--ps-shards", "2"], {})).toThrow(/^invalid --export-dir: exports during training need one parameter-server shard/);
  });

  it("an unreadable feature list stops the orchestrator at start with exit 2 and one line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pangea-export-flags-"));
    writeFileSync(join(dir, "present.json"), "{}");
    const r = await runNode(ENTRY.orchestrator, ["--port", "0", "--export-dir", join(dir, "models"), "--export-feature-list", join(dir, "absent.json")]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([`pangea-orchestrator: --export-feature-list: feature list ${join(dir, "absent.json")} is missing`, "Run 'pangea-orchestrator --help' for usage."]);
    // One that does not parse is refused at start too, not at the job's export after it trained.
    writeFileSync(join(dir, "junk.txt"), "junk\n");
    const junk = await runNode(ENTRY.orchestrator, ["--port", "0", "--export-dir", join(dir, "models"), "--export-feature-list", join(dir, "junk.txt")]);
    expect(junk.code).toBe(2);
    expect(junk.stderr.trim().split("\n")[0]).toBe(`pangea-orchestrator: --export-feature-list: feature list ${join(dir, "junk.txt")}:1: expected feature_name=... slot=<integer>, got 'junk'`);
  });
});
