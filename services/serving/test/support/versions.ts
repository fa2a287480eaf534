import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "@pangea/kit";
import { EXPORT_FORMAT, EXPORT_SCHEMA_VERSION, denseParams, type DlrmSpec, type ExportManifest } from "@pangea/model";

/** A small model: 2 dense inputs, one slot (id 1) of dim 2. */
export const SPEC: DlrmSpec = { numDense: 2, numSlots: 1, embeddingDim: 2, bottomMlp: [2], topMlp: [] };
export const SLOT = 1;
/** Feature id words (lo, hi) of id `n` in slot 1. */
export const idWords = (n: number): [number, number] => [n, (SLOT << 16) >>> 0];

/**
 * Writes model version `v` under `base` as `pangea export` lays it out: dense
 * weights all `fill`, one table of `rows` rows (row i all i + 1), manifest
 * with every file's size and SHA-256.
 */
export function writeVersion(base: string, v: number, fill = 0.1, rows = 3): string {
  const dir = join(base, String(v));
  mkdirSync(dir, { recursive: true });
  const params = denseParams(SPEC);
  const n = params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  const files: ExportManifest["files"] = {};
  const put = (name: string, data: Uint8Array) => {
    writeFileSync(join(dir, name), data);
    files[name] = { bytes: data.byteLength, sha256: sha256Hex(data) };
  };
  put("dense.f32", new Uint8Array(new Float32Array(n).fill(fill).buffer));
  put(`slot-${SLOT}.ids.u64`, new Uint8Array(Uint32Array.from(Array.from({ length: rows }, (_, i) => idWords(i + 1)).flat()).buffer));
  put(`slot-${SLOT}.rows.f32`, new Uint8Array(Float32Array.from(Array.from({ length: rows * SPEC.embeddingDim }, (_, k) => Math.floor(k / SPEC.embeddingDim) + 1)).buffer));
  const manifest: ExportManifest = {
    format: EXPORT_FORMAT,
    schemaVersion: EXPORT_SCHEMA_VERSION,
    version: v,
    createdAt: new Date(0).toISOString(),
    source: { checkpoint: "test", jobId: "test", step: v },
    model: { ...SPEC, bottomMlp: [...SPEC.bottomMlp], topMlp: [...SPEC.topMlp] },
    slotIds: [SLOT],
    denseParams: params.map((p) => ({ name: p.name, shape: [...p.shape] })),
    tables: [{ slot: SLOT, dim: SPEC.embeddingDim, rows }],
    files,
  };
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
  return dir;
}

/** Damages version `v`'s rows file (its checksum then fails). */
export function corrupt(base: string, v: number): void {
  writeFileSync(join(base, String(v), `slot-${SLOT}.rows.f32`), Buffer.from("not the rows"));
}
