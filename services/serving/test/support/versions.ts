import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "@pangea/kit";
import { EXPORT_FORMAT, EXPORT_SCHEMA_VERSION, denseParams, dlrmSpec, rowWidths, type ExportManifest, type ModelSpec } from "@pangea/model";

/** A small model: 2 dense inputs, one slot (id 1) of dim 2. */
export const SPEC = dlrmSpec(2, 1, 2, [2], []);
export const SLOT = 1;
/** Feature id words (lo, hi) of id `n` in slot 1. */
export const idWords = (n: number): [number, number] => [n, (SLOT << 16) >>> 0];

/** What a written version holds: spec, slot ids, every dense value, rows per slot, and optionally a feature list file. */
export interface ModelFiles {
  spec: ModelSpec;
  slotIds: number[];
  dense: Float32Array;
  tables: { slot: number; ids: Uint32Array; rows: Float32Array }[];
  featureList?: { name: string; text: string };
}

/**
 * Writes model version `v` under `base` as `pangea export` lays it out:
 * manifest with every file's size and SHA-256.
 */
export function writeModel(base: string, v: number, m: ModelFiles): string {
  const dir = join(base, String(v));
  mkdirSync(dir, { recursive: true });
  const params = denseParams(m.spec);
  const files: ExportManifest["files"] = {};
  const put = (name: string, data: Uint8Array) => {
    writeFileSync(join(dir, name), data);
    files[name] = { bytes: data.byteLength, sha256: sha256Hex(data) };
  };
  put("dense.f32", new Uint8Array(m.dense.buffer, m.dense.byteOffset, m.dense.byteLength));
  for (const t of m.tables) {
    put(`slot-${t.slot}.ids.u64`, new Uint8Array(t.ids.buffer, t.ids.byteOffset, t.ids.byteLength));
    put(`slot-${t.slot}.rows.f32`, new Uint8Array(t.rows.buffer, t.rows.byteOffset, t.rows.byteLength));
  }
  if (m.featureList) put(m.featureList.name, Buffer.from(m.featureList.text));
  const manifest: ExportManifest = {
    format: EXPORT_FORMAT,
    schemaVersion: EXPORT_SCHEMA_VERSION,
    version: v,
    createdAt: new Date(0).toISOString(),
    source: { checkpoint: "test", jobId: "test", step: v },
    model: m.spec,
    slotIds: m.slotIds,
    denseParams: params.map((p) => ({ name: p.name, shape: [...p.shape] })),
    tables: m.tables.map((t) => ({ slot: t.slot, dim: rowWidths(m.spec)[m.slotIds.indexOf(t.slot)] ?? m.spec.embeddingDim, rows: t.ids.length / 2 })),
    files,
    ...(m.featureList ? { featureList: m.featureList.name } : {}),
  };
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
  return dir;
}

/** Version `v` of the small model: dense weights all `fill`, one table of `rows` rows (row i all i + 1). */
export function writeVersion(base: string, v: number, fill = 0.1, rows = 3): string {
  const n = denseParams(SPEC).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  return writeModel(base, v, {
    spec: SPEC,
    slotIds: [SLOT],
    dense: new Float32Array(n).fill(fill),
    tables: [{
      slot: SLOT,
      ids: Uint32Array.from(Array.from({ length: rows }, (_, i) => idWords(i + 1)).flat()),
      rows: Float32Array.from(Array.from({ length: rows * SPEC.embeddingDim }, (_, k) => Math.floor(k / SPEC.embeddingDim) + 1)),
    }],
  });
}

/** Damages version `v`'s rows file (its checksum then fails). */
export function corrupt(base: string, v: number): void {
  writeFileSync(join(base, String(v), `slot-${SLOT}.rows.f32`), Buffer.from("not the rows"));
}
