import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { loadCheckpoint } from "../../services/orchestrator/src/checkpoint/checkpoint.js";
import { ENTRY, runNode } from "../support/processes.js";

/**
 * Per-slot dims and pooling declared in a feature list, through a whole job
 * of real processes: compute reads them, the orchestrator makes each slot's
 * table at its width, trainers pull and push rows of mixed widths, the
 * checkpoint and status carry them; a model that needs one width refuses them
 * naming the slots.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-slot-dims-"));

function parseStatus(stdout: string): JobStatus__Output {
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as JobStatus__Output;
}

describe("per-slot embedding dims and pooling from a feature list", () => {
  const data = join(tmp, "examples.pb");
  const list = join(tmp, "list.json");

  it("wide-deep trains with mixed dims; dlrm refuses them naming the slots (their feature-list names beside)", async () => {
    const gen = await runNode(ENTRY.genData, ["--out", data, "--records", "6000", "--format", "example", "--feature-list-out", list]);
    expect(gen.code, gen.stderr).toBe(0);
    const parsed = JSON.parse(readFileSync(list, "utf8")) as { slots: { name: string; slot: number; dim?: number; pooling?: string }[] };
    const [a, b, c] = parsed.slots;
    a!.dim = 4;
    b!.dim = 8;
    b!.pooling = "mean";
    c!.pooling = "sqrtn";
    writeFileSync(list, JSON.stringify(parsed));
    const common = ["run", "--json", "--trainers", "2", "--steps", "12", "--batch-size", "128", "--data", data, "--format", "example", "--feature-list", list];
    const ckpt = join(tmp, "ckpt");
    const r = await runNode(ENTRY.cli, [...common, "--model", "wide-deep", "--job-id", "mixed", "--log-dir", join(tmp, "logs"), "--checkpoint-dir", ckpt], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    const s = parseStatus(r.stdout);
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    // Row width = dim + wide-deep's first-order weight.
    const width = new Map(s.embeddings!.slots.map((t) => [t.slot, t.rowWidth]));
    expect(width.get(a!.slot)).toBe(5);
    expect(width.get(b!.slot)).toBe(9);
    expect(width.get(c!.slot)).toBe(17);
    expect(s.embeddings!.slots.every((t) => Number(t.bytes) > 0)).toBe(true);
    expect(r.stderr).toMatch(new RegExp(`embedding slots\\s+.*${a!.slot}: 5 wide`));
    const step = readdirSync(join(ckpt, "mixed")).find((d) => /^step-\d+$/.test(d))!;
    const saved = loadCheckpoint(join(ckpt, "mixed", step));
    expect(saved.manifest.model.slotDims?.slice(0, 3)).toEqual([4, 8, 16]);
    expect(saved.manifest.model.slotPooling?.slice(0, 4)).toEqual(["sum", "mean", "sqrtn", "sum"]);
    expect(saved.tables.find((t) => t.slot === a!.slot)!.dim).toBe(5);
    expect(s.eval!.auc).toBeGreaterThan(0.55);

    const dlrm = await runNode(ENTRY.cli, [...common, "--log-dir", join(tmp, "logs-dlrm"), "--checkpoint-dir", join(tmp, "ckpt-dlrm")], { timeoutMs: 120_000 });
    expect(dlrm.code).toBe(2);
    expect(dlrm.stderr).toContain(`MODEL_ERR_BAD_SPEC: dlrm needs one embedding dim for every slot (its dot products pair every slot with every other and with the bottom MLP's output), but slot ${a!.slot} (${a!.name}) has 4, slot ${b!.slot} (${b!.name}) has 8 where the model's is --embedding-dim 16`);
  });
});
