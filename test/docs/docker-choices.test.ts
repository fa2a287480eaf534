import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/processes.js";

describe("scripts/docker-choices.sh", () => {
  it("holds compute's own choices for the settings make docker-up checks (node scripts/docker-choices.mjs writes it)", () => {
    const r = spawnSync(process.execPath, [join(ROOT, "scripts/docker-choices.mjs"), "--check"], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
