#!/usr/bin/env node
// `make bench`: measures the data pipeline (every reader, the compute path,
// Kafka through the test broker fixture or KAFKA_BROKERS) and the trainer in
// one invocation and prints the ratios, so they hold on a noisy machine.
import { execFileSync } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const records = process.argv[2] ?? "100000";
const run = (script, args) =>
  execFileSync(process.execPath, [join(root, script), ...args], { encoding: "utf8", maxBuffer: 64 << 20 })
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));

const { KafkaFixtureBroker } = await import(join(root, "packages/test-utils/dist/index.js"));
const fixture = process.env.KAFKA_BROKERS ? null : await KafkaFixtureBroker.start({ defaultPartitions: 2 });
const brokers = process.env.KAFKA_BROKERS ?? fixture.address;
const topic = `pangea-bench-${Date.now()}`;
const kafkaRecords = String(Math.min(Number(records), 50_000));
let data;
let produceSeconds;
try {
  const t = performance.now();
  // The produce tool and the consumer run in child processes: the fixture answers from this one.
  await new Promise((resolve, reject) => {
    import("node:child_process").then(({ execFile }) =>
      execFile(process.execPath, [join(root, "services/compute/dist/kafka-produce.js"), "--brokers", brokers, "--topic", topic, "--records", kafkaRecords], (err) => (err ? reject(err) : resolve())),
    );
  });
  produceSeconds = (performance.now() - t) / 1000;
  data = await new Promise((resolve, reject) => {
    import("node:child_process").then(({ execFile }) =>
      execFile(
        process.execPath,
        [join(root, "services/compute/dist/bench/data-pipeline.js"), "--records", records, "--kafka-brokers", brokers, "--kafka-topic", topic, "--kafka-records", kafkaRecords],
        { maxBuffer: 64 << 20 },
        (err, stdout) => (err ? reject(err) : resolve(stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)))),
      ),
    );
  });
} finally {
  await fixture?.stop();
}
const [trainer] = run("services/trainer/dist/bench/step-rate.js", []);
console.log(`records: ${records} (Kafka: ${kafkaRecords} via ${fixture ? "the test broker fixture" : `Kafka at ${brokers}`})`);
for (const r of data) console.log(`${r.name.padEnd(55)} ${String(r.recordsPerSec).padStart(10)} records/s${r.mbPerSec ? `  (${r.mbPerSec} MB/s serialized)` : ""}`);
console.log(`${"kafka produce (tool, incl. start-up)".padEnd(55)} ${String(Math.round(Number(kafkaRecords) / produceSeconds)).padStart(10)} records/s`);
console.log(`${`${trainer.name}, ${trainer.backend}, batch ${trainer.batch}`.padEnd(55)} ${String(trainer.samplesPerSec).padStart(10)} samples/s`);
const cluster = 2 * trainer.samplesPerSec;
for (const r of data.filter((d) => d.name.startsWith("compute path"))) {
  console.log(`ratio ${r.name.replace("compute path: ", "")} / 2 trainers: ${(r.recordsPerSec / cluster).toFixed(1)}x`);
}

// Serving: train a small model, export it, and load the serving service from a separate process.
{
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "pangea-bench-serving-"));
  const status = JSON.parse(
    execFileSync(process.execPath, [join(root, "packages/cli/dist/main.js"), "run", "--json", "--steps", "30", "--batch-size", "512", "--eval-records", "2000", "--log-dir", join(dir, "logs"), "--checkpoint-dir", join(dir, "ckpt")], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .trim()
      .split("\n")
      .at(-1),
  );
  execFileSync(process.execPath, [join(root, "services/orchestrator/dist/export.js"), "--checkpoint", status.checkpointPath, "--out", join(dir, "models")], { stdio: "ignore" });
  // Certificates for the TLS figures, made the way `pangea certs` makes them.
  execFileSync(process.execPath, [join(root, "packages/rpc/dist/make-certs.js"), join(dir, "tls")], { stdio: "ignore" });
  const ms = (v) => (v === null || v === undefined || Number.isNaN(v) ? "-" : v.toFixed(1));
  const capacities = [];
  for (const r of run("services/serving/dist/bench/serving-bench.js", [join(dir, "models"), "5", join(dir, "tls")])) {
    if (r.timers !== undefined) {
      console.log(`${r.name.padEnd(55)} p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  p999 ${r.p999Ms.toFixed(2)} ms  max ${r.maxMs.toFixed(1)} ms  (${r.over5Ms} of ${r.timers} over 5 ms, ${r.over10Ms} over 10 ms)`);
      continue;
    }
    if (r.capacityRequestsPerSec !== undefined) {
      capacities.push(r);
      console.log(`${r.name.padEnd(55)} ${Math.round(r.capacityRequestsPerSec)} requests/s  ${Math.round(r.capacityExamplesPerSec)} examples/s`);
      continue;
    }
    // Where a tail came from: the server's event-loop delay, the CPU its threads and the generator's waited for (other processes held it), how late the generator sent.
    const why = `loop delay p99/max ${ms(r.serverLoopDelayP99Ms)}/${ms(r.serverLoopDelayMaxMs)} ms; waited for a core: server ${Math.round(r.serverCpuWaitMs)} ms, generator ${Math.round(r.generatorCpuWaitMs)} ms${r.sendLateP99Ms === null ? "" : `; sent late p99 ${ms(r.sendLateP99Ms)} ms`}${r.shed ? `; shed ${r.shed}` : ""}${r.errors || r.warmupErrors ? `; ${r.errors} errors${r.warmupErrors ? ` (and ${r.warmupErrors} in the untimed first second)` : ""}, the first: ${r.firstError}` : ""}`;
    const tail = r.inProcessForwardMs === undefined ? `(${Math.round(r.requestsPerSec)} requests/s achieved, up to ${r.concurrency} in flight; ${why})` : `(in-process forward ${r.inProcessForwardMs.toFixed(3)} ms; serving/in-process ${r.overheadRatio.toFixed(1)}x; ${why})`;
    console.log(`${r.name.padEnd(55)} p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  p999 ${r.p999Ms.toFixed(2)} ms  ${Math.round(r.examplesPerSec)} examples/s  ${tail}`);
  }
  if (capacities.length > 1) console.log(`ratio serving capacity ${capacities.at(-1).name.split(", ").at(-1)} / ${capacities[0].name.split(", ").at(-1)}: ${(capacities.at(-1).capacityRequestsPerSec / capacities[0].capacityRequestsPerSec).toFixed(2)}x`);
}
