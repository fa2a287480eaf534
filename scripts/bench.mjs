#!/usr/bin/env node
// `make bench`: measures the data pipeline and the trainer in one invocation
// and prints the ratio, so the comparison holds on a noisy machine.
import { execFileSync } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const records = process.argv[2] ?? "100000";
const run = (script, args) =>
  execFileSync(process.execPath, [join(root, script), ...args], { encoding: "utf8", maxBuffer: 64 << 20 })
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));

const data = run("services/compute/dist/bench/data-pipeline.js", ["--records", records]);
const [trainer] = run("services/trainer/dist/bench/step-rate.js", []);
console.log(`records: ${records}`);
for (const r of data) console.log(`${r.name.padEnd(55)} ${String(r.recordsPerSec).padStart(10)} records/s${r.mbPerSec ? `  (${r.mbPerSec} MB/s serialized)` : ""}`);
console.log(`${`${trainer.name}, ${trainer.backend}, batch ${trainer.batch}`.padEnd(55)} ${String(trainer.samplesPerSec).padStart(10)} samples/s`);
const cluster = 2 * trainer.samplesPerSec;
for (const r of data.filter((d) => d.name.startsWith("compute path"))) {
  console.log(`ratio ${r.name.replace("compute path: ", "")} / 2 trainers: ${(r.recordsPerSec / cluster).toFixed(1)}x`);
}
