import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENTRY, lastLine, runNode } from "../support/processes.js";
import { ARCHITECTURES, ARCHITECTURE_NAMES, architectureConfig, dlrmSpec, validateSpec } from "@pangea/model";
import { saveCheckpoint } from "../../services/orchestrator/src/checkpoint/checkpoint.js";
import { DenseStore } from "../../services/orchestrator/src/params/dense-store.js";
import { EmbeddingStore } from "../../services/orchestrator/src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../../services/orchestrator/src/job/job.js";

/**
 * Services and pangea run refusing bad flags, model configs and checkpoints at their start: one line naming the flag,
 * field or file, exit 2, before anything starts. Each case is a process that stops at once (no cluster, no timing
 * checks), so the file runs beside others, its cases side by side.
 */

/** The registry's names as the --model refusal lists them, and those taking mixed dims as a one-dim refusal names them. */
const MODEL_LIST = ARCHITECTURE_NAMES.join(", ");
const MIXED_OK = ARCHITECTURE_NAMES.filter((n) => !ARCHITECTURES.get(n)!.oneDim);
const MIXED_OK_WORDS = `${MIXED_OK.slice(0, -1).join(", ")}${MIXED_OK.length > 1 ? " and " : ""}${MIXED_OK[MIXED_OK.length - 1]}`;

const tmp = mkdtempSync(join(tmpdir(), "pangea-start-refusals-"));

describe("bad service flags", () => {
  // Each is a process that stops at start: they run side by side.
  it.concurrent.for([
    ["orchestrator", ["--trainers", "0"], {}, 'pangea-orchestrator: invalid --trainers: expected a positive number of trainers: a whole number from 1 to 256, got "0"'],
    ["orchestrator", ["--bottom-mlp", "64,x"], {}, 'pangea-orchestrator: invalid --bottom-mlp: expected bottom MLP widths as comma-separated positive integers, e.g. 64,16, got "64,x"'],
    ["orchestrator", [], { PANGEA_STEPS: "many" }, 'pangea-orchestrator: invalid PANGEA_STEPS (environment): expected a positive number of steps: a whole number from 1 to 2^53 - 1, got "many"'],
    ["orchestrator", ["--frobnicate"], {}, "pangea-orchestrator: Unknown option '--frobnicate'"],
    // A file the environment names that does not read: named as the variable set, as the parse's own errors are.
    ["orchestrator", [], { PANGEA_MODEL_CONFIG: "/nonexistent/model.json" }, "pangea-orchestrator: PANGEA_MODEL_CONFIG (environment): cannot read /nonexistent/model.json (ENOENT)"],
    ["compute", [], { PANGEA_DATA: "/nonexistent/data.tsv" }, "pangea-compute: error COMPUTE_ERR_BAD_CONFIG: PANGEA_DATA (environment): cannot read data file /nonexistent/data.tsv: ENOENT"],
    ["orchestrator", ["--embedding-dim", "8", "--bottom-mlp", "64,16"], {}, "pangea-orchestrator: error MODEL_ERR_BAD_SPEC: dlrm's bottomMlp must end in the embedding dim 8, ends in 16 (given by --bottom-mlp)"],
    ["compute", ["--port", "70000"], {}, 'pangea-compute: invalid --port: expected a port 0..65535, got "70000"'],
    ["compute", ["--orchestrator", "nohostport"], {}, 'pangea-compute: invalid --orchestrator: expected host:port (a port 1..65535), got "nohostport"'],
    ["trainer", ["--backend", "gpu"], {}, 'pangea-trainer: invalid --backend: expected auto, tensorflow, wasm or cpu, got "gpu"'],
  ] as const)("%s %j exits 2 with one line naming the flag", async ([service, args, env, message], { expect }) => {
    const r = await runNode(ENTRY[service], [...args], { env: env as NodeJS.ProcessEnv });
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")[0]).toBe(message);
  });

  it("an orchestrator whose --slot-config gives a slot another embedding dim exits 2 naming the slot, for a model that needs one dim", async () => {
    const path = join(tmp, "bad-slots.json");
    writeFileSync(path, JSON.stringify({ slots: { "7": { dim: 8 } } }));
    const r = await runNode(ENTRY.orchestrator, ["--port", "0", "--slot-config", path]);
    expect(r.code).toBe(2);
    expect(lastLine(r.stderr)).toBe(
      `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: dlrm needs one embedding dim for every slot (its dot products pair every slot with every other and with the bottom MLP's output), but slot 7 has 8 where the model's is --embedding-dim 16; ${MIXED_OK_WORDS} take mixed dims`,
    );
  });

  it("compute with a missing data file exits 2 naming the file, as for any bad flag", async () => {
    const r = await runNode(ENTRY.compute, ["--data", join(tmp, "missing.tsv")]);
    expect(r.code).toBe(2);
    expect(lastLine(r.stderr)).toBe(`pangea-compute: error COMPUTE_ERR_BAD_CONFIG: --data: cannot read data file ${join(tmp, "missing.tsv")}: ENOENT`);
  });
});

/** A --model-config file holding `content` (a string as is, anything else as JSON). */
function modelConfig(name: string, content: unknown): string {
  const path = join(tmp, `${name}.json`);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

/** A checkpoint of the built-in data's default dlrm model (job "dlrm-job", step 5), as a finished job leaves it. */
function dlrmCheckpoint(name = "dlrm-ckpt"): { root: string; dir: string } {
  const spec = dlrmSpec(13, 26, 16, [64, 16], [64, 32]);
  const root = join(tmp, name);
  const store = new EmbeddingStore(defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.5 }, 16), new Map(), 1);
  // One row of slot 1: its table carries Adagrad's state.
  store.rowForTraining(7, 0x10000);
  return { root, dir: saveCheckpoint(root, "dlrm-job", 5, spec, new DenseStore(spec, 1, 0.003), store) };
}

/** A wide-deep job's checkpoint whose slots 1..26 are at dim 16 but slot 3 at 8, and pool by sum but slot 5 by mean, with the slot ids as a job saves them. */
function mixedSlotsCheckpoint(): string {
  const slotDims = Array.from({ length: 26 }, (_, i) => (i === 2 ? 8 : 16));
  const slotPooling = Array.from({ length: 26 }, (_, i) => (i === 4 ? "mean" : "sum") as "sum" | "mean");
  const spec = validateSpec({ numDense: 13, numSlots: 26, embeddingDim: 16, slotDims, slotPooling, architecture: architectureConfig("wide-deep", {}) });
  const store = new EmbeddingStore(defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.5 }, 17), new Map(), 1);
  return saveCheckpoint(join(tmp, "mixed-ckpt"), "mixed-job", 5, spec, new DenseStore(spec, 1, 0.003), store, undefined, undefined, Array.from({ length: 26 }, (_, i) => i + 1));
}

describe("bad model input, as a new user gives it: one line naming the flag or field, exit 2, before anything starts", () => {
  const missing = join(tmp, "no-such-model.json");
  const ck = dlrmCheckpoint();
  // The cases run side by side: two resuming one job would race for its lock (ORCH_ERR_JOB_IN_USE), so each has its own.
  const ck2 = dlrmCheckpoint("dlrm-ckpt-2");
  const mixed = mixedSlotsCheckpoint();
  const cases: [string, string[], string | RegExp][] = [
    ["an unknown model", ["--model", "nope"], `pangea-orchestrator: invalid --model: expected one of ${MODEL_LIST}, got "nope"`],
    ["a missing --model-config file", ["--model", "deepfm", "--model-config", missing], `pangea-orchestrator: --model-config: cannot read ${missing} (ENOENT)`],
    ["a --model-config that is not JSON", ["--model", "deepfm", "--model-config", modelConfig("not-json", '{"deepMlp": [64, 32],}')], new RegExp(`^pangea-orchestrator: --model-config: ${join(tmp, "not-json.json")} is not JSON: \\S`)],
    ["a --model-config giving a field twice", ["--model", "deepfm", "--model-config", modelConfig("twice", '{"deepMlp": [64, 32], "dropout": 0.1, "deepMlp": [128]}')], `pangea-orchestrator: --model-config: ${join(tmp, "twice.json")} gives "deepMlp" twice; give each field once`],
    ["a --model-config that is not an object", ["--model", "deepfm", "--model-config", modelConfig("array", [64, 32])], `pangea-orchestrator: --model-config: ${join(tmp, "array.json")} must hold a JSON object of deepfm's hyper-parameters`],
    ["a --model-config for another model", ["--model", "deepfm", "--model-config", modelConfig("named", { name: "dlrm", topMlp: [8] })], `pangea-orchestrator: --model-config: ${join(tmp, "named.json")} is for model "dlrm", but --model is deepfm`],
    ["a --model-config naming no model", ["--model", "deepfm", "--model-config", modelConfig("no-model", { name: "foo" })], `pangea-orchestrator: --model-config: ${join(tmp, "no-model.json")} is for model "foo" (not a model: expected one of ${ARCHITECTURE_NAMES.join(", ")}), but --model is deepfm`],
    ["an unknown field", ["--model", "deepfm", "--model-config", modelConfig("unknown", { deepMlp: [64, 32], batchNorm: true })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model deepfm: unknown field "batchNorm"; deepfm takes deepMlp, dropout (from ${join(tmp, "unknown.json")})`],
    ["a dropout rate of 1", ["--model", "dcn-v2", "--model-config", modelConfig("dropout-1", { dropout: 1 })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model dcn-v2 field dropout: expected dropout below 1 (the rate of units dropped), got 1 (from ${join(tmp, "dropout-1.json")})`],
    ["a negative dropout rate", ["--model", "mmoe", "--model-config", modelConfig("dropout-neg", { dropout: -0.1 })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model mmoe field dropout: expected dropout >= 0, got -0.1 (from ${join(tmp, "dropout-neg.json")})`],
    ["a dropout rate given as a string", ["--top-mlp", "64,32", "--model-config", modelConfig("dropout-str", { dropout: "0.1" })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model dlrm field dropout: expected dropout as a rate in [0, 1), got "0.1" (from ${join(tmp, "dropout-str.json")})`],
    ["a negative --dense-l2", ["--dense-l2=-0.1"], 'pangea-orchestrator: invalid --dense-l2: expected an L2 strength >= 0, got "-0.1"'],
    ["a --sparse-l2 that is not a number", ["--sparse-l2", "lots"], 'pangea-orchestrator: invalid --sparse-l2: expected an L2 strength (a number >= 0), got "lots"'],
    ["a number given as a string", ["--model", "dcn-v2", "--model-config", modelConfig("string-layers", { crossLayers: "3" })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model dcn-v2 field crossLayers: expected a number, got "3" (from ${join(tmp, "string-layers.json")})`],
    ["widths given as a string", ["--model", "deepfm", "--model-config", modelConfig("string-widths", { deepMlp: "64,32" })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model deepfm field deepMlp: expected deepMlp as a list of positive integers, e.g. [64, 32], got "64,32" (from ${join(tmp, "string-widths.json")})`],
    ["a layer of width 0", ["--model", "wide-deep", "--model-config", modelConfig("zero", { deepMlp: [64, 0] })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model wide-deep field deepMlp.1: expected deepMlp as positive integers, got 0 (from ${join(tmp, "zero.json")})`],
    ["an unknown structure", ["--model", "dcn-v2", "--model-config", modelConfig("structure", { structure: "side-by-side" })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model dcn-v2 field structure: expected structure "parallel" or "stacked", got "side-by-side" (from ${join(tmp, "structure.json")})`],
    ["a low rank no input could take", ["--model", "dcn-v2", "--model-config", modelConfig("rank", { lowRank: 1_000_000 })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model dcn-v2 field lowRank: expected lowRank of at most 65536 (and below the cross width), got 1000000 (from ${join(tmp, "rank.json")})`],
    ["a layer far too wide", ["--model", "deepfm", "--model-config", modelConfig("wide", { deepMlp: [1e9] })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model deepfm field deepMlp.0: expected deepMlp widths of at most 65536, got 1000000000 (from ${join(tmp, "wide.json")})`],
    // Hidden layers alone beyond the budget: refused at start, whatever the data (its first layer's width waits for the data's).
    ["layers too wide for any data", ["--model", "deepfm", "--model-config", modelConfig("huge", { deepMlp: [60000, 60000] })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model deepfm would have at least 3,600,300,003 dense parameters on any data (the largest, deep.1.w, is [60000, 60000]); at most 134,217,728: narrow its layers (from ${join(tmp, "huge.json")})`],
    ["mmoe without experts", ["--model", "mmoe", "--model-config", modelConfig("no-experts", { numExperts: 0 })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model mmoe field numExperts: expected at least one expert, got 0 (from ${join(tmp, "no-experts.json")})`],
    ["shared-bottom without a shared layer", ["--model", "shared-bottom", "--model-config", modelConfig("no-bottom", { bottomMlp: [] })], `pangea-orchestrator: error MODEL_ERR_BAD_SPEC: model shared-bottom field bottomMlp: expected at least one bottomMlp layer, got 0 (from ${join(tmp, "no-bottom.json")})`],
    ["a model config that is not a regular file", ["--model", "deepfm", "--model-config", "/dev/zero"], "pangea-orchestrator: --model-config: /dev/zero is not a regular file"],
    ["every slot at a dim other than --embedding-dim, for a model that needs one", ["--model", "deepfm", "--slot-config", modelConfig("all8", { default: { dim: 8 } })], "pangea-orchestrator: error MODEL_ERR_BAD_SPEC: deepfm needs one embedding dim for every slot (its factorization machine takes the dot product of every pair of slots), and every slot has 8 but --embedding-dim is 16: give --embedding-dim 8"],
    ["dlrm's --bottom-mlp with another model", ["--model", "deepfm", "--bottom-mlp", "32,16"], 'pangea-orchestrator: --bottom-mlp and --top-mlp are dlrm\'s; give deepfm\'s layer widths in --model-config (its defaults: {"deepMlp":[64,32]})'],
    ["dlrm's --top-mlp with another model, at dlrm's default", ["--model", "deepfm", "--top-mlp", "64,32"], 'pangea-orchestrator: --bottom-mlp and --top-mlp are dlrm\'s; give deepfm\'s layer widths in --model-config (its defaults: {"deepMlp":[64,32]})'],
    ["a dlrm checkpoint restored into another architecture", ["--model", "deepfm", "--restore-from", ck.dir], `pangea-orchestrator: --restore-from: the checkpoint ${ck.dir} holds model dlrm, but --model is deepfm: it was trained with --model dlrm at its default hyper-parameters`],
    ["a dlrm checkpoint restored with other widths", ["--top-mlp", "32", "--restore-from", ck.dir], `pangea-orchestrator: --restore-from: the checkpoint ${ck.dir} has dlrm topMlp [64,32], but this job's (--top-mlp) is [32]: it was trained with --model dlrm at its default hyper-parameters`],
    ["a checkpoint restored with a slot --slot-config gives another dim", ["--model", "wide-deep", "--restore-from", mixed, "--slot-config", modelConfig("slot3-dim", { slots: { "3": { dim: 16 } } })], `pangea-orchestrator: --restore-from: the checkpoint ${mixed} has slot 3 at embedding dim 8, but --slot-config gives it 16`],
    ["a checkpoint restored with a slot --slot-config pools otherwise", ["--model", "wide-deep", "--restore-from", mixed, "--slot-config", modelConfig("slot5-pool", { slots: { "3": { dim: 8 }, "5": { pooling: "sqrtn" } } })], `pangea-orchestrator: --restore-from: the checkpoint ${mixed} pools slot 5 with mean, but --slot-config gives it sqrtn`],
    ["a checkpoint restored with another sparse optimizer", ["--restore-from", ck.dir, "--sparse-optimizer", "ftrl"], new RegExp(`^pangea-orchestrator: --restore-from: the checkpoint ${ck.dir.replace(/[.*+?^$()|[\]\\]/g, "\\$&")} holds slot 1's rows with adagrad's state, but this job gives the slot ftrl \\(--sparse-optimizer or --slot-config\\): give the optimizer it was trained with$`)],
    ["a checkpoint restored with another dense optimizer", ["--restore-from", ck.dir, "--dense-optimizer", "adagrad"], `pangea-orchestrator: --restore-from: the checkpoint ${ck.dir} was trained with --dense-optimizer adam, but this job gives adagrad: give the optimizer it was trained with`],
    ["a model name that is not a string", ["--model-config", modelConfig("name-5", { name: 5 })], `pangea-orchestrator: --model-config: ${join(tmp, "name-5.json")} field name: expected the model's name as a string ("dlrm"), got 5`],
    ["an empty --model-config", ["--model-config", ""], 'pangea-orchestrator: invalid --model-config: expected a path, got ""'],
    ["dlrm's widths by flag that the embedding dim cannot take", ["--bottom-mlp", "64,8"], "pangea-orchestrator: error MODEL_ERR_BAD_SPEC: dlrm's bottomMlp must end in the embedding dim 16, ends in 8 (given by --bottom-mlp)"],
    ["an --export-dir inside the job's checkpoint directory", ["--checkpoint-dir", join(tmp, "ck-place"), "--job-id", "placed", "--export-dir", join(tmp, "ck-place", "placed", "models")], `pangea-orchestrator: --export-dir: ${join(tmp, "ck-place", "placed", "models")} is inside job placed's checkpoint directory ${join(tmp, "ck-place", "placed")}; give the model versions a directory outside the job's checkpoints`],
    ["an --export-dir that is --checkpoint-dir", ["--checkpoint-dir", join(tmp, "ck-place"), "--export-dir", join(tmp, "ck-place")], `pangea-orchestrator: --export-dir: ${join(tmp, "ck-place")} is --checkpoint-dir too, where each directory is a job's; give the model versions a directory of their own`],
    ["an --export-dir inside another job's checkpoint", ["--export-dir", join(ck.dir, "models")], `pangea-orchestrator: --export-dir: ${join(ck.dir, "models")} is inside the checkpoint ${ck.dir}: pruning it would delete the model versions with it; give them a directory outside the job's checkpoints`],
    ["a job's checkpoint directory given for a checkpoint", ["--restore-from", dirname(ck.dir)], `pangea-orchestrator: error ORCH_ERR_NOT_A_CHECKPOINT: checkpoint ${dirname(ck.dir)}: this is a job's checkpoint directory, not a checkpoint; give one of its step-N directories, e.g. the newest, ${ck.dir}`],
    ["a dlrm job resumed as another architecture", ["--resume", "--job-id", "dlrm-job", "--checkpoint-dir", ck.root, "--model", "wide-deep"], "pangea-orchestrator: --resume: job dlrm-job's checkpoint at step 5 holds model dlrm, but --model is wide-deep: it was trained with --model dlrm at its default hyper-parameters"],
    // Every reason at once: mended in one go, not one restart per reason.
    ["a job resumed with several flags the checkpoint contradicts", ["--resume", "--job-id", "dlrm-job", "--checkpoint-dir", ck2.root, "--model", "wide-deep", "--dense-optimizer", "adagrad", "--sparse-optimizer", "ftrl", "--steps", "3"], "pangea-orchestrator: --resume: job dlrm-job's checkpoint at step 5 holds model dlrm, but --model is wide-deep: it was trained with --model dlrm at its default hyper-parameters; and it was trained with --dense-optimizer adam, but this job gives adagrad: give the optimizer it was trained with; and it holds slot 1's rows with adagrad's state, but this job gives the slot ftrl (--sparse-optimizer or --slot-config): give the optimizer it was trained with; and it is beyond --steps 3: --steps counts the job's steps from its start, so give at least 5 to continue it (or --restore-from that checkpoint to start a new job from its parameters)"],
  ];

  // Each is an orchestrator that stops at start: they run side by side.
  it.concurrent.for(cases)("%s", async ([, args, message], { expect }) => {
    const r = await runNode(ENTRY.orchestrator, ["--port", "0", "--metrics-port", "0", ...args]);
    expect(r.code, r.stderr).toBe(2);
    // --resume logs which checkpoint it found before the refusal.
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("pangea-orchestrator:"));
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    if (typeof message === "string") expect(line).toBe(message);
    else expect(line).toMatch(message);
  });

  it("a start refused after taking the job's lock leaves no empty job directory; one holding checkpoints is kept", async () => {
    const root = join(tmp, "refused-ckpt");
    const r = await runNode(ENTRY.orchestrator, ["--port", "0", "--metrics-port", "0", "--checkpoint-dir", root, "--job-id", "refused", "--model", "deepfm", "--restore-from", ck.dir]);
    expect(r.code, r.stderr).toBe(2);
    expect(existsSync(join(root, "refused"))).toBe(false);
    const resumed = await runNode(ENTRY.orchestrator, ["--port", "0", "--metrics-port", "0", "--resume", "--job-id", "dlrm-job", "--checkpoint-dir", ck.root, "--model", "wide-deep"]);
    expect(resumed.code, resumed.stderr).toBe(2);
    expect(existsSync(ck.dir)).toBe(true);
  });

  it("a new run under a job id that has checkpoints is refused (it would prune them with its own), naming them and --resume; the checkpoints are kept", async () => {
    for (const extra of [[], ["--restore-from", ck.dir]]) {
      const r = await runNode(ENTRY.orchestrator, ["--port", "0", "--metrics-port", "0", "--job-id", "dlrm-job", "--checkpoint-dir", ck.root, ...extra]);
      expect([r.code, r.stderr.split("\n")[0]]).toEqual([2, `pangea-orchestrator: --job-id dlrm-job: ${join(ck.root, "dlrm-job")} holds that job's checkpoints already (newest ${basename(ck.dir)}); --resume continues it, another --job-id starts a new job beside it`]);
      expect(existsSync(ck.dir)).toBe(true);
    }
  });

  it("pangea run refuses a --slot-config the orchestrator would, or whose dims the model cannot take, before starting anything, exit 2", async () => {
    const mixed = modelConfig("run-slots-mixed", { slots: { "7": { dim: 8 } } });
    const r = await runNode(ENTRY.cli, ["run", "--model", "dlrm", "--slot-config", mixed, "--steps", "3", "--log-dir", join(tmp, "run-slots")]);
    expect([r.code, r.stderr.split("\n")[0]]).toEqual([2, `pangea run: MODEL_ERR_BAD_SPEC: dlrm needs one embedding dim for every slot (its dot products pair every slot with every other and with the bottom MLP's output), but slot 7 has 8 where the model's is --embedding-dim 16; ${MIXED_OK_WORDS} take mixed dims`]);
    const huge = modelConfig("run-slots-huge", { slots: { "7": { dim: 100000 } } });
    const h = await runNode(ENTRY.cli, ["run", "--model", "wide-deep", "--slot-config", huge, "--steps", "3", "--log-dir", join(tmp, "run-slots")]);
    expect([h.code, h.stderr.split("\n")[0]]).toEqual([2, `pangea run: ORCH_ERR_BAD_SLOT_CONFIG: slot config ${huge}: slots.7.dim: expected an embedding dim 1..1024, got 100000`]);
    expect(existsSync(join(tmp, "run-slots")), "no process was started (none wrote a log)").toBe(false);
  });

  it("pangea run refuses an unknown model and a bad --model-config itself before starting anything, exit 2; a rank the data cannot take fails the job at its start naming the data's width, exit 1", async () => {
    const bad = await runNode(ENTRY.cli, ["run", "--model", "nope", "--log-dir", join(tmp, "run-nope")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split("\n")[0]).toBe(`pangea run: invalid --model: expected one of ${MODEL_LIST}, got "nope"`);
    const unknown = await runNode(ENTRY.cli, ["run", "--model", "deepfm", "--model-config", modelConfig("run-unknown", { batchNorm: true }), "--log-dir", join(tmp, "run-unknown")]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.split("\n")[0]).toBe(`pangea run: MODEL_ERR_BAD_SPEC: model deepfm: unknown field "batchNorm"; deepfm takes deepMlp, dropout (from ${join(tmp, "run-unknown.json")})`);
    expect(existsSync(join(tmp, "run-unknown")), "no process was started (none wrote a log)").toBe(false);
    // The orchestrator's flags that need each other, given by flag or by the environment: refused as it would, before any start.
    const best = await runNode(ENTRY.cli, ["run", "--keep-best", "--log-dir", join(tmp, "run-best")]);
    expect([best.code, best.stderr.split("\n")[0]]).toEqual([2, "pangea run: invalid --keep-best: needs evaluations to compare: give --eval-every-steps N too"]);
    const byEnv = await runNode(ENTRY.cli, ["run", "--log-dir", join(tmp, "run-best")], { env: { ...process.env, PANGEA_BEST_TASK: "ctr" } });
    expect([byEnv.code, byEnv.stderr.split("\n")[0]]).toEqual([2, "pangea run: invalid PANGEA_BEST_TASK (environment): names the task --keep-best compares; give --keep-best too"]);
    expect(existsSync(join(tmp, "run-best")), "no process was started (none wrote a log)").toBe(false);
    const rank = modelConfig("rank-500", { lowRank: 500, crossLayers: 1, deepMlp: [8] });
    const r = await runNode(ENTRY.cli, ["run", "--model", "dcn-v2", "--model-config", rank, "--trainers", "1", "--steps", "2", "--batch-size", "64", "--eval-records", "100", 
      "--log-dir", join(tmp, "run-rank"), "--checkpoint-dir", join(tmp, "ckpt")], { timeoutMs: 60_000, stopSignal: "SIGTERM" });
    // A configuration the data contradicts exits as a bad flag does.
    expect(r.code).toBe(2);
    // The job's reason once: the trainer that exits because the job ended is not quoted repeating it.
    expect(lastLine(r.stderr)).toBe("pangea run: job failed: MODEL_ERR_BAD_SPEC: dcn-v2's lowRank 500 must be below the cross width 429 (0 = full rank)");
    expect(r.stdout).toMatch(/^ {2}throughput +n\/a \(no batch was trained\)$/m);
    // A checkpoint whose slot 3 --slot-config had put at dim 8, restored without it: the data's slot 3 is at the
    // --embedding-dim, known once compute registers; the fix named is the --slot-config too (it named the data alone).
    const noSlots = await runNode(ENTRY.cli, ["run", "--model", "wide-deep", "--restore-from", mixed, "--trainers", "1", "--steps", "2", "--batch-size", "64", "--eval-records", "100", 
      "--log-dir", join(tmp, "run-no-slots"), "--checkpoint-dir", join(tmp, "ckpt")], { timeoutMs: 60_000, stopSignal: "SIGTERM" });
    expect([noSlots.code, lastLine(noSlots.stderr)]).toEqual([2, "pangea run: job failed: ORCH_ERR_CHECKPOINT_MISMATCH: the checkpoint holds another model than this job's: slot 3's embedding dim 8 against 16 (checkpoint against job); give the job the data (and feature list, and the --slot-config) the checkpoint was trained with, or start it without the checkpoint"]);
  }, 120_000);

  it("a checkpoint whose dense parameters are not this build's architecture's (its params() changed since) is refused by a job restoring it and by pangea export, naming the first that differs", async () => {
    // A wide-deep checkpoint of the built-in data's shape, its manifest listing the first two dense parameters swapped:
    // what a definition that declares them in another order since sees (the values are stored flat, in that order).
    const spec = validateSpec({ numDense: 13, numSlots: 26, embeddingDim: 16, architecture: architectureConfig("wide-deep", {}) });
    const store = new EmbeddingStore(defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.5 }, 16), new Map(), 1);
    const dir = saveCheckpoint(join(tmp, "changed-ckpt"), "changed-job", 5, spec, new DenseStore(spec, 1, 0.003), store, undefined, undefined, Array.from({ length: 26 }, (_, i) => i + 1));
    const manifestPath = join(dir, "manifest.json");
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as { denseParams: { name: string; shape: number[] }[] };
    const [a, b] = manifest.denseParams as [{ name: string; shape: number[] }, { name: string; shape: number[] }];
    expect(a.shape.join()).not.toBe(b.shape.join());
    writeFileSync(manifestPath, JSON.stringify({ ...manifest, denseParams: [b, a, ...manifest.denseParams.slice(2)] }));
    const shape = (p: { shape: number[] }) => `[${p.shape.join(", ")}]`;
    const differs = `its dense parameter 0 is ${b.name} ${shape(b)}, where this build's wide-deep declares ${a.name} ${shape(a)}: the architecture's definition changed since the checkpoint was written`;
    const run = await runNode(ENTRY.cli, ["run", "--model", "wide-deep", "--restore-from", dir, "--trainers", "1", "--steps", "2", "--batch-size", "64", "--eval-records", "100", 
      "--log-dir", join(tmp, "run-changed"), "--checkpoint-dir", join(tmp, "ckpt")], { timeoutMs: 60_000, stopSignal: "SIGTERM" });
    expect([run.code, lastLine(run.stderr)]).toEqual([2, `pangea run: job failed: ORCH_ERR_CHECKPOINT_MISMATCH: the checkpoint's dense parameters are not this build's model's: ${differs}; continue it with the build that wrote it, or start the job without it`]);
    const exported = await runNode(ENTRY.cli, ["export", "--checkpoint", dir, "--out", join(tmp, "changed-models")]);
    expect([exported.code, lastLine(exported.stderr)]).toEqual([2, `pangea export: error ORCH_ERR_CHECKPOINT_MISMATCH: checkpoint ${dir}: ${differs}; export it with the build that wrote it`]);
    expect(existsSync(join(tmp, "changed-models", "1"))).toBe(false);
  }, 120_000);
});
