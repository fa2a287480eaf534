import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nativeBlas } from "@pangea/blas";
import type { JobStatus__Output } from "@pangea/schema";
import { ENTRY, runNode } from "../support/processes.js";

/**
 * What a user without a C compiler or OpenBLAS runs: this project runs with
 * PANGEA_NATIVE_BLAS=off (vitest.config.ts), so the trainers' pure-wasm step,
 * the JavaScript dense layers and serving's JavaScript forward are used
 * end to end, with the same quality bar as the native path.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-fallback-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("without the native BLAS addon", () => {
  it("the addon is really off in this project", () => {
    expect(process.env.PANGEA_NATIVE_BLAS).toBe("off");
    expect(nativeBlas()).toEqual({ blas: null, reason: "disabled by PANGEA_NATIVE_BLAS=off" });
  });

  it("pangea run trains on plain wasm: the loss falls and the held-out AUC clears the bar", async () => {
    const r = await runNode(
      ENTRY.cli,
      ["run", "--json", "--trainers", "2", "--steps", "100", "--batch-size", "256", "--eval-records", "5000", "--log-dir", join(tmp, "logs"), "--checkpoint-dir", join(tmp, "ckpt")],
      { timeoutMs: 240_000, env: { PANGEA_NATIVE_BLAS: "off" } },
    );
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as JobStatus__Output;
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(s.backend).toMatch(/^wasm on 2 trainers$|^wasm$/);
    expect(s.smoothedLoss).toBeLessThan(s.firstLoss - 0.05);
    expect(s.eval!.auc).toBeGreaterThan(0.7);
  }, 300_000);
});
