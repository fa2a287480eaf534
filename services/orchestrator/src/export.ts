import { z } from "zod";
import { nonNegativeInt, parseConfig, programName, runMain, usageText, type FlagTable } from "@pangea/kit";
import { exportModel } from "./export/export-model.js";

const FLAGS: FlagTable = {
  checkpoint: { description: "checkpoint to export (shard 0's step-N directory; other shards are found beside it)" },
  out: { description: "the model's base path; the version goes in <out>/<version>" },
  version: { description: "version number (default: one above the newest under --out)" },
  "feature-list": { description: "the feature list the data was read with (JSON or feature_list.conf): lets serving decode Monolith Instance/Example inputs and hash raw feature values" },
};

const schema = z.object({
  checkpoint: z.string({ message: "expected a checkpoint directory" }).min(1),
  out: z.string({ message: "expected the model's base path" }).min(1),
  version: nonNegativeInt("a positive version number").refine((v) => v > 0, "expected a positive version number").optional(),
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
  const { dir, manifest } = exportModel(c.checkpoint, c.out, c.version, c.featureList);
  const rows = manifest.tables.reduce((n, t) => n + t.rows, 0);
  process.stdout.write(`exported version ${manifest.version} to ${dir} (step ${manifest.source.step} of job ${manifest.source.jobId}, ${rows} embedding rows, ${manifest.slotIds.length} slots)\n`);
}, usage);
