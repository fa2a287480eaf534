import { createWriteStream } from "node:fs";
import { z } from "zod";
import { nonNegativeInt, parseConfig, positiveInt, runMain, usageText, type FlagTable } from "@pangea/kit";
import { SyntheticSource } from "./sources/synthetic.js";
import { ComputeErrors } from "./errors.js";

const FLAGS: FlagTable = {
  out: { description: "file to write (Criteo TSV: label, I1-I13, C1-C26)" },
  records: { description: "number of records", default: "100000" },
  seed: { description: "seed of the synthetic data", default: "42" },
};

const schema = z.object({
  out: z.string({ message: "expected a file path" }).min(1, "expected a file path"),
  records: positiveInt("a positive record count").default(100_000),
  seed: nonNegativeInt("a non-negative integer seed").default(42),
});

const usage = () => usageText("pangea gen-data", "Write the built-in synthetic Criteo-like data set as a Criteo TSV file.", FLAGS);

runMain("pangea gen-data", async () => {
  const config = parseConfig(schema, FLAGS, process.argv.slice(2), {});
  if (!config) {
    process.stdout.write(usage());
    return;
  }
  const source = new SyntheticSource({ seed: config.seed, evalRecords: 0 });
  const out = createWriteStream(config.out);
  const failed = new Promise<never>((_, reject) =>
    out.on("error", (err) => reject(ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot write ${config.out}: ${err.message}`))),
  );
  const chunk: string[] = [];
  for (let i = 0; i < config.records; i++) {
    chunk.push(source.tsvLine("train", i));
    if (chunk.length === 4096 || i === config.records - 1) {
      if (!out.write(`${chunk.join("\n")}\n`)) await Promise.race([new Promise<void>((r) => out.once("drain", () => r())), failed]);
      chunk.length = 0;
    }
  }
  await Promise.race([new Promise<void>((r) => out.end(r)), failed]);
  process.stdout.write(`wrote ${config.records} records to ${config.out}\n`);
}, usage);
