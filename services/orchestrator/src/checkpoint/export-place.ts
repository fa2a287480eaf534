import { realpathSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { jobCheckpointDir } from "./checkpoint.js";
import { EXPORT_FORMAT, isCheckpoint, isJobDirectory, jobDirectoryIn, manifestFormatOf } from "@pangea/model";

/**
 * Why `dir` cannot be a model base path (`pangea export --out`,
 * `--export-dir`), or null: it is, or is inside, a model version (immutable),
 * or a checkpoint, whose pruning
 * would delete the versions with it, or a job's checkpoint directory, whose
 * step-N listings and pruning the versions would sit among. `job` names the
 * job's directory the orchestrator will write (it may not exist yet), and
 * `checkpointDir` its --checkpoint-dir (versions there would read as jobs).
 */
export function exportPlaceProblem(dir: string, job?: { checkpointDir: string; jobId: string }): string | null {
  const target = realPath(dir);
  const where = (at: string) => (at === target ? "is" : `is inside`);
  if (job) {
    if (target === realPath(job.checkpointDir)) return `${dir} is --checkpoint-dir too, where each directory is a job's; give the model versions a directory of their own`;
    const jobDir = realPath(jobCheckpointDir(job.checkpointDir, job.jobId));
    if (target === jobDir || target.startsWith(`${jobDir}/`)) return `${dir} ${where(jobDir)} job ${job.jobId}'s checkpoint directory ${jobDir}; give the model versions a directory outside the job's checkpoints`;
  }
  const job0 = jobDirectoryIn(target);
  if (job0) return `${dir} is a --checkpoint-dir (it holds the checkpoints of job ${job0}), where each directory is a job's; give the model versions a directory of their own`;
  for (let at = target; ; at = dirname(at)) {
    // A version given for the base path: the next version would be written inside it, and served from there.
    if (manifestFormatOf(at) === EXPORT_FORMAT) return `${dir} ${where(at)} the model version ${at}, and versions are immutable; give the directory holding the versions, ${dirname(at)}`;
    if (isCheckpoint(at)) return `${dir} ${where(at)} the checkpoint ${at}: pruning it would delete the model versions with it; give them a directory outside the job's checkpoints`;
    if (isJobDirectory(at)) return `${dir} ${where(at)} a job's checkpoint directory, ${at}; give the model versions a directory outside the job's checkpoints`;
    if (dirname(at) === at) return null;
  }
}

/** The path with the links of its nearest existing ancestor followed: a link into the job's checkpoints is the same place. */
function realPath(path: string): string {
  const rest: string[] = [];
  for (let at = resolve(path); ; at = dirname(at)) {
    try {
      return join(realpathSync(at), ...rest.reverse());
    } catch {
      if (dirname(at) === at) return resolve(path);
      rest.push(basename(at));
    }
  }
}

/**
 * Why a job cannot keep its checkpoints in `jobDir`, or null: it is a model
 * version `pangea export` wrote (an export to --checkpoint-dir names its
 * versions 1, 2, ..., as a job of that id would be named).
 */
export function exportedVersionAt(jobDir: string): string | null {
  if (manifestFormatOf(jobDir) !== EXPORT_FORMAT) return null;
  return `${jobDir}, where the job's checkpoints go, is an exported model version; give another --job-id or --checkpoint-dir`;
}
