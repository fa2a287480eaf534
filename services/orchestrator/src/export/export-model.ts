import { existsSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { EXPORT_FORMAT, EXPORT_SCHEMA_VERSION, denseParams, featureListModelMismatch, storedParamsDifference, type ExportManifest } from "@pangea/model";
import { makeDirs, sha256Hex } from "@pangea/kit";
import { featureInputsMismatch, loadFeatureList } from "@pangea/features";
import { loadShardedCheckpoint, manifestJson, reshard, writeDurably } from "../checkpoint/checkpoint.js";
import { OrchestratorErrors } from "../errors.js";

const bytesOf = (a: Float32Array | Uint32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Numbered version directories under a model's base path, ascending. */
export function exportedVersions(base: string): number[] {
  if (!existsSync(base)) return [];
  return readdirSync(base)
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * The version under `base` already exported from `checkpointDir` with the same feature list (or none), if any: a job
 * restarted after its export (killed during its final evaluation, then resumed) exports the same checkpoint again,
 * which is that version, not a copy of it under the next number.
 */
export function versionExportedFrom(base: string, checkpointDir: string, featureListPath?: string): string | null {
  const checkpoint = resolve(checkpointDir);
  // The dense weights' digest ties a version to the checkpoint's contents, not its path alone: a new job of the same
  // id and directory writes other weights under the same path.
  let denseSha: string | undefined;
  try {
    denseSha = (manifestJson(checkpointDir) as { files?: Record<string, { sha256?: string }> }).files?.["dense.f32"]?.sha256;
  } catch {
    return null;
  }
  if (!denseSha) return null;
  let listSha: string | null = null;
  for (const v of exportedVersions(base).reverse()) {
    const dir = join(base, String(v));
    let manifest: ExportManifest;
    try {
      manifest = manifestJson(dir) as ExportManifest;
    } catch {
      continue;
    }
    if (manifest.source?.checkpoint !== checkpoint || manifest.files?.["dense.f32"]?.sha256 !== denseSha) continue;
    const held = manifest.featureList ? manifest.files?.[manifest.featureList]?.sha256 : undefined;
    if (!featureListPath) return held ? null : dir;
    try {
      listSha ??= sha256Hex(readFileSync(featureListPath));
    } catch {
      return null;
    }
    return held === listSha ? dir : null;
  }
  return null;
}

/**
 * Writes a servable model version from a checkpoint (every shard's rows
 * merged): `<base>/<version>/` with a manifest, the dense weights and one
 * ids/rows file pair per slot. Written into a temporary directory and
 * renamed, so serving never sees half a version. Returns its directory.
 */
export function exportModel(checkpointDir: string, base: string, version?: number, featureListPath?: string): { dir: string; manifest: ExportManifest } {
  const shards = loadShardedCheckpoint(checkpointDir);
  const first = shards[0]!.manifest;
  if (!first.slotIds) {
    throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `checkpoint ${checkpointDir} does not record the model's slot ids (written by an older version); train again to export it`);
  }
  const existing = exportedVersions(base);
  const v = version ?? (existing.length ? existing[existing.length - 1]! + 1 : 1);
  if (version === undefined && !Number.isSafeInteger(v)) {
    throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `the newest version under ${base} is ${v - 1}, and no next version fits below 2^53; give --version a free number, or export to another --out`);
  }
  if (!Number.isSafeInteger(v) || v < 1) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `export version must be a positive integer, got ${version}`);
  const dir = join(base, String(v));
  if (existsSync(dir)) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `export ${dir} already exists; versions are immutable, pick another`);
  const [merged] = reshard(shards, 1);
  const spec = first.model;
  const changed = storedParamsDifference(first.denseParams, spec);
  if (changed?.corrupt) throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `checkpoint ${checkpointDir}: ${changed.text}`);
  if (changed) {
    throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_MISMATCH", `checkpoint ${checkpointDir}: ${changed.text}: the architecture's definition changed since the checkpoint was written; export it with the build that wrote it`);
  }
  const params = denseParams(spec);
  const files: Record<string, Buffer> = {};
  const flat = new Float32Array(params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0));
  let at = 0;
  shards[0]!.dense.forEach((d) => {
    flat.set(d, at);
    at += d.length;
  });
  if (at !== flat.length) throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `checkpoint ${checkpointDir} holds ${at} dense values, the model needs ${flat.length}`);
  files["dense.f32"] = bytesOf(flat);
  const tables = merged!.sort((a, b) => a.slot - b.slot);
  for (const t of tables) {
    files[`slot-${t.slot}.ids.u64`] = bytesOf(t.ids);
    files[`slot-${t.slot}.rows.f32`] = bytesOf(t.weights);
  }
  let featureListName: string | undefined;
  if (featureListPath) {
    try {
      featureListName = featureListPath.endsWith(".json") ? "feature_list.json" : "feature_list.conf";
      files[featureListName] = readFileSync(featureListPath);
    } catch (err) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `cannot read feature list ${featureListPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    // Versions are immutable: a list serving would refuse must not make one it can never load.
    let problem: string | null;
    try {
      const list = loadFeatureList(featureListPath);
      const trained = first.training?.data?.featureInputs;
      // A list that encodes inputs otherwise (a transform, a type, a name) would have serving feed the model other values than it learned on.
      problem = featureListModelMismatch(list, spec, first.slotIds) ?? (trained ? featureInputsMismatch(trained, list.config) : null);
    } catch (err) {
      problem = (err as Error).message;
    }
    if (problem) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `--feature-list ${featureListPath} cannot go with this model: ${problem}`);
  }
  const manifest: ExportManifest = {
    format: EXPORT_FORMAT,
    schemaVersion: EXPORT_SCHEMA_VERSION,
    version: v,
    createdAt: new Date().toISOString(),
    // Absolute: the path is read by whoever serves the version, from wherever they are.
    source: { checkpoint: resolve(checkpointDir), jobId: first.jobId, step: first.step },
    model: spec,
    slotIds: first.slotIds,
    denseParams: params.map((p) => ({ name: p.name, shape: [...p.shape] })),
    tables: tables.map((t) => ({ slot: t.slot, dim: t.dim, rows: t.rows })),
    files: {},
    ...(featureListName ? { featureList: featureListName } : {}),
  };
  const tmp = join(base, `.tmp-${v}-${process.pid}`);
  try {
    makeDirs(tmp);
    for (const [name, data] of Object.entries(files)) {
      writeDurably(join(tmp, name), data);
      manifest.files[name] = { bytes: data.length, sha256: sha256Hex(data) };
    }
    writeDurably(join(tmp, "manifest.json"), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_IO", `cannot write export ${dir}: ${(err as Error).message}`, { cause: err });
  }
  return { dir, manifest };
}
