import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { loadFeatureList } from "@pangea/features";
import { UsageError, positiveInt, parseConfig, programName, runMain, unwritableDirReason, usageText, type FlagTable } from "@pangea/kit";
import { exportModel, exportedVersions } from "./export/export-model.js";
import { OrchestratorErrors } from "./errors.js";
import { exportPlaceProblem } from "./checkpoint/export-place.js";

const FLAGS: FlagTable = {
  checkpoint: { description: "checkpoint to export (shard 0's step-N directory; other shards are found beside it)" },
  out: { description: "the model's base path; the version goes in <out>/<version>" },
  version: { description: "version number (default: one above the newest under --out)" },
  "feature-list": { description: "the feature list the data was read with (JSON or feature_list.conf): lets serving decode Monolith Instance/Example inputs and hash raw feature values" },
};

const schema = z.object({
  checkpoint: z.string({ message: "expected a checkpoint directory" }).min(1),
  out: z.string({ message: "expected the model's base path" }).min(1),
  version: positiveInt("a version number").optional(),
  featureList: z.string().min(1).optional(),
});

const PROGRAM = programName("pangea-export");
const usage = () => usageText(PROGRAM, "Writes a servable model version from a training checkpoint.", FLAGS);

runMain(PROGRAM, async () => {
  const c = parseConfig(schema, FLAGS, process.argv.slice(2), {});
  if (!c) {
    process.stdout.write(usage());
    return;
  }
  // What the command line got wrong is said before the checkpoint is read, naming the flag (exit 2).
  const outProblem = unwritableDirReason(c.out) ?? exportPlaceProblem(c.out);
  if (outProblem) throw new UsageError(`--out: ${outProblem}`);
  if (c.version !== undefined && existsSync(join(c.out, String(c.version)))) {
    const newest = exportedVersions(c.out).at(-1);
    throw new UsageError(`--version: ${join(c.out, String(c.version))} already exists and versions are immutable; pick another, or leave --version out for the next one${newest === undefined ? "" : ` (${newest + 1})`}`);
  }
  if (c.featureList !== undefined) {
    try {
      loadFeatureList(c.featureList);
    } catch (err) {
      throw new UsageError(`--feature-list: ${(err as Error).message}`);
    }
  }
  let exported: ReturnType<typeof exportModel>;
  try {
    exported = exportModel(c.checkpoint, c.out, c.version, c.featureList);
  } catch (err) {
    // A feature list that cannot go with this checkpoint's model is the command line's mistake too.
    if (OrchestratorErrors.is(err, "ORCH_ERR_BAD_REQUEST")) throw new UsageError((err as Error).message);
    throw err;
  }
  const { dir, manifest } = exported;
  const rows = manifest.tables.reduce((n, t) => n + t.rows, 0);
  process.stdout.write(`exported version ${manifest.version} to ${dir} (step ${manifest.source.step} of job ${manifest.source.jobId}, ${rows} embedding rows, ${manifest.slotIds.length} slots)\n`);
}, usage);
