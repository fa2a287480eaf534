import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { loadCheckpoint } from "../../services/orchestrator/src/checkpoint/checkpoint.js";
import { ENTRY, runNode, waitFor } from "../support/processes.js";

/**
 * Checkpoints and exports written before architectures existed hold DLRM's
 * widths beside the shape (model = {numDense, numSlots, embeddingDim,
 * bottomMlp, topMlp}, no architecture). A job restores from such a
 * checkpoint and serving loads such an export, as DLRM.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-legacy-"));
const small = ["--trainers", "1", "--batch-size", "64", "--eval-records", "200", "--checkpoint-dir", join(tmp, "ckpt")];
let checkpoint = "";
let server: ChildProcess | null = null;

/** Rewrites a checkpoint's or export's manifest.json (not among its checksummed files) with the model in the old form. */
function makeLegacy(dir: string): Record<string, unknown> {
  const path = join(dir, "manifest.json");
  const manifest = JSON.parse(readFileSync(path, "utf8")) as { model: { numDense: number; numSlots: number; embeddingDim: number; architecture: { name: string; bottomMlp: number[]; topMlp: number[] } } };
  const { numDense, numSlots, embeddingDim, architecture } = manifest.model;
  expect(architecture.name).toBe("dlrm");
  const legacy = { numDense, numSlots, embeddingDim, bottomMlp: architecture.bottomMlp, topMlp: architecture.topMlp };
  writeFileSync(path, JSON.stringify({ ...manifest, model: legacy }));
  return legacy;
}

beforeAll(async () => {
  const r = await runNode(ENTRY.cli, ["run", "--json", "--steps", "4", "--job-id", "current", "--log-dir", join(tmp, "logs-current"), ...small], { timeoutMs: 120_000, stopSignal: "SIGTERM" });
  expect(r.code, r.stderr).toBe(0);
  checkpoint = (JSON.parse(r.stdout.trim().split("\n").at(-1)!) as JobStatus__Output).checkpointPath;
}, 150_000);

afterAll(() => {
  server?.kill("SIGTERM");
});

describe("old DLRM-only checkpoints and exports", () => {
  it("a job restores from a checkpoint in the old form, as dlrm, and its own checkpoint is written in today's form", async () => {
    const old = join(tmp, "old-ckpt", "step-4");
    cpSync(checkpoint, old, { recursive: true });
    const legacy = makeLegacy(old);
    expect(legacy).toEqual({ numDense: 13, numSlots: 26, embeddingDim: 16, bottomMlp: [64, 16], topMlp: [64, 32] });
    const r = await runNode(ENTRY.cli, ["run", "--json", "--steps", "2", "--job-id", "restored", "--restore-from", old, "--log-dir", join(tmp, "logs-restored"), ...small], { timeoutMs: 120_000, stopSignal: "SIGTERM" });
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as JobStatus__Output;
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    // The job's status and summary say where its parameters came from.
    expect(s.restoredFrom).toMatch(new RegExp(`^${old.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(step 4 of job .+\\)$`));
    expect(r.stderr).toContain(`  restored from     ${s.restoredFrom}; its parameters, this job's steps from 0`);
    const restored = readFileSync(join(tmp, "logs-restored", "orchestrator.log"), "utf8").split("\n").find((l) => l.includes('"msg":"parameters restored from checkpoint"'));
    expect(restored, "the orchestrator logs the restore").toBeDefined();
    expect(JSON.parse(restored!)).toMatchObject({ step: 4, resume: false });
    expect(loadCheckpoint(s.checkpointPath).manifest.model).toEqual({ numDense: 13, numSlots: 26, embeddingDim: 16, architecture: { name: "dlrm", bottomMlp: [64, 16], topMlp: [64, 32] } });
    // A model of another architecture is refused at start, naming the flag.
    const other = await runNode(ENTRY.orchestrator, ["--port", "0", "--model", "wide-deep", "--restore-from", old]);
    expect(other.code).toBe(2);
    expect(other.stderr.split("\n")[0]).toBe(`pangea-orchestrator: --restore-from: the checkpoint ${old} holds model dlrm, but --model is wide-deep: it was trained with --model dlrm at its default hyper-parameters`);
  }, 150_000);

  it("serving loads an export in the old form beside one in today's form, and both predict the same", async () => {
    const base = join(tmp, "models");
    const exp = await runNode(ENTRY.exportModel, ["--checkpoint", checkpoint, "--out", base, "--version", "1"]);
    expect(exp.code, exp.stderr).toBe(0);
    cpSync(join(base, "1"), join(tmp, "v2"), { recursive: true });
    const manifest = JSON.parse(readFileSync(join(tmp, "v2", "manifest.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(tmp, "v2", "manifest.json"), JSON.stringify({ ...manifest, version: 2 }));
    makeLegacy(join(tmp, "v2"));
    cpSync(join(tmp, "v2"), join(base, "2"), { recursive: true });

    server = spawn(process.execPath, [ENTRY.serving, "--model-base-path", base, "--model-name", "ctr", "--port", "0", "--rest-port", "0", "--keep-versions", "2"], { stdio: ["ignore", "pipe", "pipe"] });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: server!.stdout! }).once("line", resolve);
      server!.once("exit", (code) => reject(new Error(`serving exited with ${code}`)));
    });
    const rest = (JSON.parse(line) as { rest: string }).rest;
    const status = await waitFor("both versions to load", async () => {
      const s = (await (await fetch(`http://${rest}/v1/models/ctr`)).json()) as { model_version_status: { version: string; state: string; status?: { error_message?: string } }[] };
      return s.model_version_status.length === 2 ? s.model_version_status : null;
    }, 10_000, 100);
    expect(status.map((v) => `${v.version}:${v.state}`).sort()).toEqual(["1:AVAILABLE", "2:AVAILABLE"]);

    const ids = (slot: number, n: number) => ((BigInt(slot) << 48n) | BigInt(n)).toString();
    const exported = readFileSync(join(base, "1", "slot-1.ids.u64"));
    const inputs = {
      dense_features: [Array.from({ length: 13 }, (_, j) => j / 4), Array.from({ length: 13 }, (_, j) => (13 - j) / 5)],
      feature_ids: [Array.from({ length: 26 }, (_, s) => (s === 0 ? exported.readBigUInt64LE(0).toString() : ids(s + 1, 7))), Array.from({ length: 26 }, (_, s) => ids(s + 1, 99))],
    };
    const predict = async (version: number) => {
      const res = await fetch(`http://${rest}/v1/models/ctr/versions/${version}:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ inputs }) });
      expect(res.status).toBe(200);
      return ((await res.json()) as { outputs: { probabilities: number[] } }).outputs.probabilities;
    };
    const today = await predict(1);
    const old = await predict(2);
    expect(today).toHaveLength(2);
    today.forEach((p) => expect(p > 0 && p < 1).toBe(true));
    expect(old).toEqual(today);
  }, 60_000);
});
