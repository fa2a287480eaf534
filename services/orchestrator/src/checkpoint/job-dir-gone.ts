import type { PangeaError } from "@pangea/kit";
import { OrchestratorErrors } from "../errors.js";

/**
 * The job's failure when its checkpoint directory was removed (or made
 * unreadable) under it, `why` saying how it was seen: its lock went with it,
 * so the job stops rather than checkpoint where no lock guards it.
 */
export function jobDirGone(dir: string, why: string): PangeaError {
  return OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_IO", `the job's checkpoint directory ${dir} was removed or cannot be read while the job ran (${why}): the job stops rather than checkpoint where no lock guards it`);
}
