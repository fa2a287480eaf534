import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * `n` examples in the id form (REST's {"inputs": ...}) of ids spread across an exported version's tables, each slot's
 * ids taken evenly over its table, with small dense values: a request that reads rows from all over the model, for
 * comparing what two versions (or replicas) predict.
 */
export function inputsAcrossTables(versionDir: string, n: number): { inputs: { dense_features: number[][]; feature_ids: string[][] } } {
  const manifest = JSON.parse(readFileSync(join(versionDir, "manifest.json"), "utf8")) as { slotIds: number[] };
  const perSlot = manifest.slotIds.map((slot) => {
    const b = readFileSync(join(versionDir, `slot-${slot}.ids.u64`));
    const rows = b.length / 8;
    return Array.from({ length: n }, (_, e) => b.readBigUInt64LE(Math.floor((e * rows) / n) * 8).toString());
  });
  return {
    inputs: {
      dense_features: Array.from({ length: n }, (_, e) => Array.from({ length: 13 }, (_, j) => ((e + 1) * (j + 2)) % 5)),
      feature_ids: Array.from({ length: n }, (_, e) => perSlot.map((ids) => ids[e]!)),
    },
  };
}
