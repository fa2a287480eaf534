import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "@pangea/kit";
import { COMPUTE_FLAGS, ORCHESTRATOR_FLAGS, TRAINER_FLAGS } from "@pangea/service-flags";
import { COMPUTE_FLAGS as COMPUTE, isMultiTaskModel, orchestratorSchema } from "@pangea/service-flags";
import { RUN_FLAGS, clusterOptions, parseRun, resumeWithoutJobId } from "../src/commands/run.js";
import { builtInTaskArgs } from "../src/commands/pass-through.js";

describe("pangea run's flags come from the services' declarations", () => {
  it("every service flag the cluster does not set itself is a run flag, with the service's description and default", () => {
    const own = ["host", "port", "advertise", "metrics-host", "metrics-port", "orchestrator", "coordinator", "role", "shard-index", "worker-id", "discovery", "cluster-name", "discovery-lease-seconds", "tls-dir", "tls-name", "blas-threads"];
    for (const table of [ORCHESTRATOR_FLAGS, COMPUTE_FLAGS, TRAINER_FLAGS]) {
      for (const name of Object.keys(table).filter((n) => !own.includes(n))) expect(RUN_FLAGS, name).toHaveProperty([name]);
    }
    expect(RUN_FLAGS.steps).toEqual({ description: ORCHESTRATOR_FLAGS.steps!.description, default: "500" });
    expect(RUN_FLAGS.format).toEqual({ description: COMPUTE_FLAGS.format!.description, default: "criteo" });
    expect(RUN_FLAGS["checkpoint-every-seconds"]!.description).toBe(ORCHESTRATOR_FLAGS["checkpoint-every-seconds"]!.description);
    expect(RUN_FLAGS.resume).toEqual({ description: ORCHESTRATOR_FLAGS.resume!.description, boolean: true });
    expect(RUN_FLAGS.seed).toEqual({ description: "orchestrator: seed of the initial parameters and of the dropout masks; compute: seed of the synthetic data", default: "42" });
    // The cluster's own flags keep their meaning for the whole cluster.
    expect(RUN_FLAGS["metrics-port"]!.description).toBe("orchestrator's HTTP port: /metrics and the dashboard at / (0 = any free port)");
  });

  it("passes each flag given, as typed, to every service that declares it, and nothing it was not given", () => {
    const c = parseRun(["--trainers", "3", "--steps", "7", "--seed", "3", "--data", "a.tsv", "--resume", "--backend", "wasm", "--checkpoint-every-seconds", "30", "--blas-threads", "2"])!;
    expect(c.args).toEqual({
      orchestrator: ["--steps", "7", "--seed", "3", "--checkpoint-every-seconds", "30", "--resume"],
      compute: ["--seed", "3", "--data", "a.tsv"],
      trainer: ["--backend", "wasm"],
    });
    const o = clusterOptions(c, false);
    expect(o).toMatchObject({ trainers: 3, psShards: 1, orchestratorArgs: c.args.orchestrator, computeArgs: c.args.compute, trainerArgs: ["--backend", "wasm", "--blas-threads", "2"] });
    expect(parseRun([])!.args).toEqual({ orchestrator: [], compute: [], trainer: [] });
  });

  it("warns of --resume without a job id (each start would be a new job with nothing to resume), by flag or environment", () => {
    const warn = (argv: string[], env: NodeJS.ProcessEnv = {}) => resumeWithoutJobId(parseRun(argv)!.args.orchestrator, env);
    expect(warn(["--resume", "--steps", "7"])).toBe("warning: --resume without --job-id: this start is a new job (job-<timestamp>) with no checkpoint to resume; give the same --job-id on every start to continue a job\n");
    expect(warn([], { PANGEA_RESUME: "true" })).toMatch(/^warning: PANGEA_RESUME without --job-id: /);
    expect(warn(["--resume", "--job-id=ctr"])).toBeNull();
    expect(warn(["--resume"], { PANGEA_JOB_ID: "" })).not.toBeNull();
    expect(warn(["--resume", "--job-id", "ctr"])).toBeNull();
    expect(warn(["--resume"], { PANGEA_JOB_ID: "ctr" })).toBeNull();
    expect(warn([], { PANGEA_RESUME: "1", PANGEA_JOB_ID: "ctr" })).toBeNull();
    expect(warn(["--job-id", "ctr"])).toBeNull();
    expect(warn([])).toBeNull();
    expect(warn([], { PANGEA_RESUME: "0" })).toBeNull();
  });

  it("refuses a bad value with the service's own message, and a local cluster larger than this machine runs", () => {
    expect(() => parseRun(["--sparse-optimizer", "sgdx"])).toThrow("invalid --sparse-optimizer: expected one of sgd, adagrad, ftrl, adam, amsgrad, momentum, rmsprop, adadelta");
    expect(() => parseRun(["--trainers", "65"])).toThrow("invalid --trainers: expected at most 64 local trainers");
  });

  it("refuses a --slot-config the orchestrator would refuse, or whose dims the model cannot take, before starting anything", () => {
    const dir = mkdtempSync(join(tmpdir(), "pangea-run-slots-"));
    const file = (name: string, body: unknown) => {
      const path = join(dir, name);
      writeFileSync(path, JSON.stringify(body));
      return path;
    };
    const refusal = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const saved = { ...process.env };
      Object.assign(process.env, env);
      try {
        parseRun(argv);
        return null;
      } catch (err) {
        expect(err).toBeInstanceOf(UsageError);
        return (err as Error).message;
      } finally {
        process.env = saved;
      }
    };
    const mixed = file("mixed.json", { slots: { "7": { dim: 8 } } });
    expect(refusal(["--model", "dlrm", "--slot-config", mixed, "--steps", "3"])).toMatch(/^MODEL_ERR_BAD_SPEC: dlrm needs one embedding dim for every slot \(.*\), but slot 7 has 8 where the model's is --embedding-dim 16; .* take mixed dims$/);
    // The same file by the environment, as the orchestrator would read it; a model that takes mixed dims runs.
    expect(refusal(["--model", "dlrm"], { PANGEA_SLOT_CONFIG: mixed })).toMatch(/^MODEL_ERR_BAD_SPEC: dlrm needs one embedding dim/);
    expect(refusal(["--model", "wide-deep", "--slot-config", mixed])).toBeNull();
    for (const [body, message] of [
      [{ slots: { "7": { dimm: 8 } } }, 'slots.7: unknown field "dimm"; a slot takes dim, initializer, optimizer, hyper, occurrenceThreshold, expireSeconds, pooling'],
      [{ slots: { "7": { dim: 0 } } }, "slots.7.dim: expected an embedding dim 1..1024, got 0"],
      [{ slots: { "7": { dim: 100000 } } }, "slots.7.dim: expected an embedding dim 1..1024, got 100000"],
      [{ slots: { "7": { pooling: "max" } } }, 'slots.7.pooling: expected one of "sum", "mean", "sqrtn", got "max"'],
      [{ slots: { abc: {} } }, 'slots.abc: a slot is named by its number (as in the data and the feature list), e.g. "7"; got "abc"'],
      [{ slot: {} }, '(root): unknown field "slot"; the file takes default, slots'],
    ] as const) {
      const path = file("bad.json", body);
      expect(refusal(["--model", "wide-deep", "--slot-config", path])).toBe(`ORCH_ERR_BAD_SLOT_CONFIG: slot config ${path}: ${message}`);
    }
  });

  it("refuses --tls-dir without --tls (it has a default, and would be ignored)", () => {
    for (const argv of [["--tls-dir", "/tmp/certs"], ["--tls-dir=/tmp/certs"]]) expect(() => parseRun(argv)).toThrow("invalid --tls-dir: names --tls's certificates; give --tls too");
    expect(parseRun(["--tls", "--tls-dir", "/tmp/certs"])!.tlsDir).toBe("/tmp/certs");
  });
});

describe("a multi-task --model on the built-in data", () => {
  const standIns = new Map([["towers", { multiTask: true }], ["plain", {}]]);
  const none = { orchestrator: [], compute: [], trainer: [] };

  it("is an architecture whose registry entry says multiTask", () => {
    expect(isMultiTaskModel("towers", standIns)).toBe(true);
    expect(isMultiTaskModel("plain", standIns)).toBe(false);
    expect(isMultiTaskModel("no-such-model", standIns)).toBe(false);
  });

  it("gets the generator's second task with no other flag; data or an explicit --synthetic-tasks decides otherwise", () => {
    expect(builtInTaskArgs(none, true, {}).compute).toEqual(["--synthetic-tasks", "2"]);
    expect(builtInTaskArgs(none, false, {}).compute).toEqual([]);
    for (const given of [["--synthetic-tasks", "1"], ["--data", "a.parquet"], ["--kafka-brokers", "k:9092"]]) {
      expect(builtInTaskArgs({ ...none, compute: given }, true, {}).compute).toEqual(given);
    }
    for (const name of ["data", "kafka-brokers", "synthetic-tasks"]) {
      expect(builtInTaskArgs(none, true, { [COMPUTE[name]!.env!]: "x" }).compute, name).toEqual([]);
    }
  });

  it("pangea run passes it to compute for exactly the registry's multi-task architectures", () => {
    // Every name --model takes (the registry's).
    const models = orchestratorSchema.shape.model.unwrap().options;
    expect(models).toContain("dlrm");
    for (const model of models) {
      const c = parseRun(["--model", model])!;
      expect(c.args.compute, model).toEqual(isMultiTaskModel(model) ? ["--synthetic-tasks", "2"] : []);
      expect(c.args.orchestrator).toEqual(["--model", model]);
    }
    expect(parseRun(["--synthetic-tasks", "2"])!.args.compute).toEqual(["--synthetic-tasks", "2"]);
    expect(() => parseRun(["--synthetic-tasks", "3"])).toThrow("invalid --synthetic-tasks: expected 1 or 2");
  });
});
