import type { ModelSpec } from "./spec.js";

/**
 * The servable model layout `pangea export` writes and serving reads:
 * <base>/<version>/manifest.json plus dense.f32 and, per slot,
 * slot-<s>.ids.u64 and slot-<s>.rows.f32.
 */
export const EXPORT_FORMAT = "pangea-export";
/** What a training checkpoint's manifest.json names as its format: serving tells one given for a model from a version. */
export const CHECKPOINT_FORMAT = "pangea-checkpoint";
/** Bumped when the layout changes; serving refuses versions it does not know. */
export const EXPORT_SCHEMA_VERSION = 1;
/** The schema versions this build's serving reads. */
export const SUPPORTED_EXPORT_SCHEMA_VERSIONS: readonly number[] = [1];

export interface ExportManifest {
  format: typeof EXPORT_FORMAT;
  schemaVersion: number;
  /** The model version (the directory's name). */
  version: number;
  createdAt: string;
  source: { checkpoint: string; jobId: string; step: number };
  /** The model (see ModelSpec); versions written before architectures hold DLRM's bottomMlp/topMlp here instead of an architecture (parseModelSpec reads both). */
  model: ModelSpec;
  /** Feature config: the slot id of each embedding column, in the model's order. */
  slotIds: number[];
  denseParams: { name: string; shape: number[] }[];
  /** Embedding table shards: one per slot, rows only (no optimizer state); dim is the row width. */
  tables: { slot: number; dim: number; rows: number }[];
  files: Record<string, { bytes: number; sha256: string }>;
  /** The feature list (copied into the version) serving decodes Monolith inputs and hashes raw feature values with. */
  featureList?: string;
}
