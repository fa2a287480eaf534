import { tasksOfList, type FeatureList, type FeatureListConfig } from "@pangea/features";
export type SplitName = "train" | "eval";

export interface SourceDescription {
  description: string;
  numDense: number;
  slotIds: number[];
  /** Where a file source keeps its decoded records (its record cache), for the log; not part of the data's identity. */
  storage?: string;
  /** Why the storage found was not used (a damaged record cache, written again), for a warning. */
  storageWarning?: string;
  /** What the data looks like it was not meant to be read as (declared slots it never fills), for the job's warnings. */
  dataWarnings?: string[];
  /** Files: a digest of the training files' sizes and sampled bytes (content-sample.ts), to tell regenerated files apart. */
  contentSample?: string;
  /** Records in the train split; 0 means unbounded (generated on demand). */
  trainRecords: number;
  evalRecords: number;
  /** Embedding width each slot asks for, where the source's feature list says (the model needs them all equal). */
  slotDims?: number[];
  /** Each slot's declared pooling ("" = none declared). */
  slotPooling?: string[];
  /** Records read whole that could not be used and were skipped (--on-bad-record=skip). */
  skippedRecords?: number;
  /** Damaged stretches of file skipped (bytes a framing or decompressor could not read). */
  skippedStretches?: number;
  /** Bytes in those stretches. */
  skippedBytes?: number;
  /** What was skipped and why, with the samples kept (BadRecords.summary). */
  skippedSummary?: string;
  /** The tasks the records' labels are for, in label order (RecordBlock.labels is [count, T]); empty or absent: one binary label. */
  tasks?: { name: string; loss: "bce" | "mse"; weight: number }[];
  /** The slot grouping records for GAUC (e.g. the user's), when known. */
  groupSlot?: number | null;
  /** How features became inputs: the feature list the records were read with (Criteo's layout for Criteo and synthetic data). */
  featureList?: FeatureListConfig;
  /** Known only for synthetic data: how well the generator's own probabilities rank the eval split. */
  groundTruth?: { auc: number; logloss: number };
  /** The same per task, in task order, for synthetic data of several tasks. */
  taskGroundTruth?: { auc: number; logloss: number }[];
}

/** What a feature list says of the inputs, the same for every source that reads records with one. */
export function listDescription(list: FeatureList): Pick<SourceDescription, "featureList" | "numDense" | "slotIds" | "slotDims" | "slotPooling" | "tasks" | "groupSlot"> {
  return {
    featureList: list.config,
    numDense: list.numDense,
    slotIds: list.slotIds,
    slotDims: list.config.slots.map((s) => s.dim ?? 0),
    slotPooling: list.config.slots.map((s) => s.pooling ?? ""),
    tasks: tasksOfList(list),
    groupSlot: list.groupSlot,
  };
}

/**
 * Columnar records, the unit a source fills and the batcher serializes.
 * Sparse features follow TrainingBatch's CSR layout: the ids of cell
 * c = sample * numSlots + slot are idWords pairs cellOffsets[c]..cellOffsets[c+1].
 */
export class RecordBlock {
  count = 0;
  nnz = 0;
  readonly dense: Float32Array;
  /** [capacity, numTasks], row-major: each record's label for every task. */
  readonly labels: Float32Array;
  /** Per-sample loss weights; 1 unless the data says otherwise. */
  readonly weights: Float32Array;
  idWords: Uint32Array;
  readonly cellOffsets: Uint32Array;

  constructor(
    readonly capacity: number,
    readonly numDense: number,
    readonly numSlots: number,
    readonly numTasks = 1,
  ) {
    this.dense = new Float32Array(capacity * numDense);
    this.labels = new Float32Array(capacity * numTasks);
    this.weights = new Float32Array(capacity).fill(1);
    this.idWords = new Uint32Array(capacity * numSlots * 2);
    this.cellOffsets = new Uint32Array(capacity * numSlots + 1);
  }
}

/** A source declares how it reads; the batcher does not care what kind it is. */
export interface DataSource {
  readonly info: SourceDescription;
  /** Fills `block` with records [start, start + count) of `split`. */
  read(split: SplitName, start: number, count: number, block: RecordBlock): void;
}

/** How many labels a source's records carry. */
export function taskCountOf(info: SourceDescription): number {
  return info.tasks?.length || 1;
}
