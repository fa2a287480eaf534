import { ServingErrors } from "../errors.js";

/** A request of more examples than --max-batch is refused as too large (RESOURCE_EXHAUSTED, REST 413), whatever its form. */
export function checkBatchSize(examples: number, maxBatch: number): void {
  if (examples > maxBatch) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `request carries ${examples} examples; this server takes at most ${maxBatch} (--max-batch)`);
}
