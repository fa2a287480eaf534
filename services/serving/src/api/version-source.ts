import type { VersionSource } from "../model/servable.js";

/** Where a version came from, as REST's status and GetModelStatus's Pangea field 1001 say it (snake_case, as the protocol's fields are). */
export function sourceFields(src: VersionSource): { job_id: string; step: number; checkpoint: string; exported_at: string } {
  return { job_id: src.jobId, step: src.step, checkpoint: src.checkpoint, exported_at: src.exportedAt };
}
