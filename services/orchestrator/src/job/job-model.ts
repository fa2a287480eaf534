import { printable, type Logger } from "@pangea/kit";
import { featureListModelMismatch, specDifference, storedParamsDifference, validateSpec, type Loss, type ModelSpec } from "@pangea/model";
import type { SourceInfo__Output } from "@pangea/schema";
import { featureInputsMismatch, loadFeatureList, parseFeatureInputs, type FeatureInputs } from "@pangea/features";
import { EmbeddingStore, type SlotConfig } from "../embeddings/embedding-store.js";
import { DEFAULT_INITIALIZER } from "../embeddings/initializer.js";
import { resolveSlotDims, resolveSlotPooling, tablesFor } from "../embeddings/model-tables.js";
import { DenseStore } from "../params/dense-store.js";
import { reshard, restoreFilter, restoreStoreCounters, restoreTables, type TrainedData, type TrainingProgress } from "../checkpoint/checkpoint.js";
import { OrchestratorErrors } from "../errors.js";
import { samplesDiffer } from "./content-samples.js";
import type { JobConfig } from "./job-config.js";

export interface JobModel {
  spec: ModelSpec;
  dense: DenseStore;
  store: EmbeddingStore;
  /** What the job accepted but does not use (JobStatus.warnings). */
  warnings: string[];
  /** The data it trains on, which the job's checkpoints record for a resume's check. */
  data: TrainedData;
}

/** The table settings of every slot --slot-config does not name. */
export function defaultSlotConfig(c: Pick<JobConfig, "sparseOptimizer" | "sparseLr"> & { sparseL2?: number }, dim: number): SlotConfig {
  return { dim, initializer: DEFAULT_INITIALIZER, optimizer: c.sparseOptimizer, hyper: { learningRate: c.sparseLr, ...(c.sparseL2 ? { l2: c.sparseL2 } : {}) }, occurrenceThreshold: 0, expireSeconds: 0 };
}

/** Global batches per step: --batches-per-step, or one per expected trainer. */
export function batchesPerStepOf(c: Pick<JobConfig, "batchesPerStep" | "trainers">): number {
  return c.batchesPerStep || c.trainers;
}

/** The training a --resume continues (null for a fresh or --restore-from start); throws if the checkpoint cannot be continued. */
export function resumedTraining(config: JobConfig): TrainingProgress | null {
  const resumed = config.resume ? (config.restoreFrom?.[0]?.manifest.training ?? null) : null;
  if (config.resume && config.restoreFrom && !resumed) {
    throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", "the checkpoint records no training progress (written by an older version); use --restore-from to take only its parameters");
  }
  const mismatch = resumed ? trainingStepMismatch(resumed, config) : null;
  if (mismatch) throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_MISMATCH", `cannot resume: the checkpoint ${mismatch}`);
  return resumed;
}

/**
 * Why a --resume cannot continue the checkpoint's steps as this job would take them, or null: another mode, batch
 * size or number of batches per step. A phrase for "the checkpoint ...", so it can join the other reasons found at start.
 */
export function trainingStepMismatch(resumed: Pick<TrainingProgress, "mode" | "batchesPerStep" | "batchSize">, config: Pick<JobConfig, "mode" | "batchSize" | "batchesPerStep" | "trainers">): string | null {
  const batchesPerStep = batchesPerStepOf(config);
  if (resumed.mode === config.mode && resumed.batchesPerStep === batchesPerStep && resumed.batchSize === config.batchSize) return null;
  // Only the trainer count differs (batches per step follow it by default): the flag that keeps the step as it was.
  const hint = resumed.mode === config.mode && resumed.batchSize === config.batchSize && !config.batchesPerStep ? ` (with ${config.trainers} trainer${config.trainers === 1 ? "" : "s"}: --batches-per-step ${resumed.batchesPerStep} keeps the job's step as it was)` : "";
  return `was taken in ${resumed.mode} mode with ${resumed.batchesPerStep} batch${resumed.batchesPerStep === 1 ? "" : "es"} of ${resumed.batchSize} per step, but this job has ${config.mode}, ${batchesPerStep} of ${config.batchSize}${hint}`;
}

/**
 * The job's parameters on shard 0, for the data compute serves: the model
 * checked against the flags and the source, then fresh or restored from
 * the checkpoint (resharded to this job's shards). Throws the job's failure.
 */
export function buildModel(config: JobConfig, source: SourceInfo__Output, resumed: TrainingProgress | null, log: Logger): JobModel {
  const data = trainedData(source);
  const changed = resumed?.data ? dataChange(resumed.data, data) : null;
  if (changed) throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_MISMATCH", `cannot resume: ${changed.why}; ${changed.retry}, or start a new job with --restore-from to take only the parameters`);
  const settings = { defaults: slotDefaultsOf(config), perSlot: config.slotConfigs };
  // A slot config may serve several data sets, so a slot this data lacks is not an error; but it is often a typo.
  const absent = [...config.slotConfigs.keys()].filter((slot) => !source.slotIds.includes(slot));
  const warnings: string[] = [...(config.startWarnings ?? []), ...source.dataWarnings];
  // Files of the same record count with other bytes (their sampled content), or described otherwise where the checkpoint
  // has no sample (older ones): perhaps the same records by another path, perhaps other data the data position would go
  // on into. Said, not refused. (Data made or streamed on demand has no position in files: the built-in data, Kafka.)
  const saved = resumed?.data;
  const other = saved && !changed && data.trainRecords > 0 ? otherFiles(saved, data) : null;
  if (other) {
    warnings.push(`--resume: ${other}; if these are other records, the job goes on at the checkpoint's position in them (start a new job with --restore-from to take only the parameters)`);
    log.warn({ trained: saved!.description, now: data.description, trainedSample: saved!.contentSample, nowSample: data.contentSample }, "resumed on data other than the checkpoint's, by its files' bytes or description");
  }
  if (absent.length) {
    const shown = source.slotIds.length > 12 ? `${source.slotIds.slice(0, 12).join(", ")}, ... (${source.slotIds.length})` : source.slotIds.join(", ");
    warnings.push(`--slot-config names slot${absent.length === 1 ? "" : "s"} ${absent.join(", ")}, which the data does not have (its slots: ${shown}); ${absent.length === 1 ? "its" : "their"} settings are not used`);
    log.warn({ slots: absent, dataSlots: source.slotIds.length }, warnings.at(-1)!);
  }
  const slotDims = resolveSlotDims(source.slotIds, source.slotDims, settings);
  const slotPooling = resolveSlotPooling(source.slotIds, source.slotPooling, settings);
  const tasks = source.tasks.length ? source.tasks.map((t) => ({ name: t.name, loss: t.loss as Loss, weight: t.weight })) : undefined;
  const spec = validateSpec({ numDense: source.numDense, numSlots: source.slotIds.length, embeddingDim: config.embeddingDim, slotDims, slotPooling, ...(tasks ? { tasks } : {}), architecture: config.architecture }, slotLabels(source.slotIds, data.featureInputs));
  // The feature list each export will carry must fit this data: found now, not after the job trained, at its export.
  if (config.exportFeatureList) {
    const list = loadFeatureList(config.exportFeatureList);
    const problem = featureListModelMismatch(list, spec, source.slotIds) ?? (data.featureInputs ? featureInputsMismatch(data.featureInputs, list.config) : null);
    if (problem) throw OrchestratorErrors.create("ORCH_ERR_BAD_JOB_CONFIG", `--export-feature-list ${config.exportFeatureList} does not fit the job's data: ${problem}`);
  }
  const tables = tablesFor(spec, source.slotIds, settings);
  const dense = new DenseStore(spec, config.seed, config.denseLr, config.denseOptimizer, config.denseL2);
  const store = new EmbeddingStore(tables.defaults, tables.perSlot, config.seed, config.maxEmbeddingBytes || undefined);
  store.declareSlots(source.slotIds);
  const model = { spec, dense, store, warnings, data };
  try {
    restoreModel(config, model, resumed, log);
  } catch (err) {
    throw OrchestratorErrors.is(err) ? err : OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", (err as Error).message);
  }
  return model;
}

/**
 * Why a compute registering with a job that resumed completed cannot be taken, or null: its data is not what the job
 * trained on (the model is built on neither, so the usual check at the start never runs). Its message says how to go on.
 */
export function completedDataChange(resumed: TrainingProgress | null, source: SourceInfo__Output): string | null {
  const changed = resumed?.data ? dataChange(resumed.data, trainedData(source)) : null;
  if (!changed) return null;
  return `the job completed at step ${resumed!.step} on other data: ${changed.why}; give it the data it trained on, or start a new job for this data (another --job-id; under Docker, make docker-down first)`;
}

/** Slots as the model's errors name them: with the feature list's name where compute read the data through one. */
function slotLabels(slotIds: readonly number[], inputs: FeatureInputs | undefined): (number | string)[] {
  const names = new Map(inputs?.slots.map((s) => [s.slot, s.name]) ?? []);
  return slotIds.map((id) => (names.has(id) ? `slot ${id} (${printable(names.get(id)!, 60)})` : id));
}

function trainedData(source: SourceInfo__Output): TrainedData {
  const featureInputs = parseFeatureInputs(source.featureInputs);
  return {
    description: source.description,
    trainRecords: Number(source.trainRecords),
    evalRecords: Number(source.evalRecords),
    ...(featureInputs ? { featureInputs } : {}),
    ...(source.contentSample ? { contentSample: source.contentSample } : {}),
  };
}

/**
 * Why a resume cannot continue on this data, or null: the checkpoint's data position
 * counts batches of its data, so bounded data of another length is other data (the
 * user switched files). Data generated or streamed on demand (0 records) is not checked.
 * `why` says what differs, `retry` how the same job could go on; each caller frames them.
 */
function dataChange(saved: TrainedData, now: TrainedData): { why: string; retry: string } | null {
  // The same records read through another feature list are other inputs: a swapped slot or a transform changed mid-job.
  const encoding = saved.featureInputs && now.featureInputs ? featureInputsMismatch(saved.featureInputs, now.featureInputs) : null;
  if (encoding) return { why: `compute reads the data with another feature list than the checkpoint's job did (${encoding.replace(/this list/g, "the new list")})`, retry: "resume with the same list" };
  if (saved.trainRecords === now.trainRecords) return null;
  const count = (n: number) => (n ? `${n.toLocaleString("en-US")} training records` : "data generated or streamed on demand");
  return { why: `the checkpoint trained on ${count(saved.trainRecords)} (${saved.description}), this job's data has ${count(now.trainRecords)} (${now.description})`, retry: "resume on the same data" };
}

/**
 * How a resume's files of the checkpoint's record count may be other records, or null: their sampled bytes differ
 * (regenerated under the same names and lengths), or, for a checkpoint without a sample, their description does.
 * The same bytes under another path are the same records: nothing to say.
 */
function otherFiles(saved: TrainedData, now: TrainedData): string | null {
  if (saved.contentSample && now.contentSample) {
    if (!samplesDiffer(saved.contentSample, now.contentSample)) return null;
    if (saved.description === now.description) return `${printable(now.description, 300)} holds other bytes than when the checkpoint trained on it (the same names and record count)`;
  } else if (saved.description === now.description) return null;
  return `the checkpoint trained on ${printable(saved.description, 300)}, this job reads ${printable(now.description, 300)}`;
}

function slotDefaultsOf(config: JobConfig): SlotConfig {
  return config.slotDefaults ?? defaultSlotConfig(config, config.embeddingDim);
}

function restoreModel(config: JobConfig, { spec, dense, store }: JobModel, resumed: TrainingProgress | null, log: Logger): void {
  const ck = config.restoreFrom;
  if (!ck) return;
  const saved = ck[0]!.manifest.model;
  const difference = specDifference(spec, saved, ck[0]!.manifest.slotIds);
  if (difference) {
    // What the data fixes (its slots, tasks), or a slot's dim or pooling that --slot-config did not name, differs: the
    // model flags and the slots --slot-config names were checked at start. specDifference's words for a slot's dim or
    // pooling (not a task's name that holds "pool") bring --slot-config into the advice.
    const slots = /^(slot \S+|[^ ]+)'s (embedding dim \d+|pooling [a-z]+) against /.test(difference) ? ", and the --slot-config" : "";
    throw OrchestratorErrors.create(
      "ORCH_ERR_CHECKPOINT_MISMATCH",
      `the checkpoint holds another model than this job's: ${difference} (checkpoint against job); give the job the data (and feature list${slots}) the checkpoint was trained with, or start it without the checkpoint`,
    );
  }
  const changed = storedParamsDifference(ck[0]!.manifest.denseParams, spec);
  if (changed?.corrupt) throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `the checkpoint: ${changed.text}`);
  if (changed) {
    throw OrchestratorErrors.create(
      "ORCH_ERR_CHECKPOINT_MISMATCH",
      `the checkpoint's dense parameters are not this build's model's: ${changed.text}: the architecture's definition changed since the checkpoint was written; continue it with the build that wrote it, or start the job without it`,
    );
  }
  const savedOptimizer = ck[0]!.manifest.denseOptimizer ?? "adam";
  if (savedOptimizer !== dense.optimizer) {
    throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_MISMATCH", `the checkpoint's dense optimizer is ${savedOptimizer}, this job's --dense-optimizer is ${dense.optimizer}`);
  }
  dense.restore(ck[0]!.dense, ck[0]!.momentM, ck[0]!.momentV, resumed?.denseUpdates);
  restoreTables(reshard(ck, config.psShards)[0]!, store);
  if (resumed) restoreStoreCounters(ck, config.psShards, 0, store);
  if (resumed) restoreFilter(ck[0]!, store);
  log.info({ step: ck[0]!.manifest.step, rows: store.size(), shards: `${ck.length} -> ${config.psShards}`, resume: resumed !== null }, "parameters restored from checkpoint");
}

/** Evicts expired rows every --expire-sweep-seconds, if any slot expires rows; returns the timer to clear. */
export function startExpirySweep(config: JobConfig, store: EmbeddingStore, log: Logger): NodeJS.Timeout | null {
  const expires = slotDefaultsOf(config).expireSeconds > 0 || [...config.slotConfigs.values()].some((c) => c.expireSeconds > 0);
  if (!expires) return null;
  const timer = setInterval(() => {
    const n = store.sweep();
    if (n > 0) log.info({ evicted: n, rows: store.size() }, "expired embedding rows evicted");
  }, config.expireSweepSeconds * 1000);
  timer.unref();
  return timer;
}
