import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/processes.js";

describe("README.md's configuration tables", () => {
  it("are what the services' flag declarations say (node scripts/flags-doc.mjs writes them)", () => {
    const r = spawnSync(process.execPath, [join(ROOT, "scripts/flags-doc.mjs"), "--check"], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
