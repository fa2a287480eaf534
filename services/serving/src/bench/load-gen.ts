import { readFileSync } from "node:fs";
import { cpuOf } from "./cpu-wait.js";
import { tfServingServices } from "../api/tf-serving-grpc.js";
import { H2UnaryClient } from "./h2-unary-client.js";
import { quantile } from "./quantile.js";

/**
 * Predict load from its own process, for `seconds`, in one of two shapes:
 * - closed loop (RATE 0 or absent): `concurrency` callers, each sending the
 *   next request when the last answered: the throughput the server
 *   sustains, with latency = concurrency / throughput once it saturates;
 * - open loop (RATE > 0): requests sent at RATE per second whether or not
 *   earlier ones have answered (as independent clients do), so several are
 *   in flight at once; latency counts from each request's scheduled send
 *   time, so a stalled generator or server cannot hide queueing
 *   (no coordinated omission); SECONDS are timed after a first second at
 *   the same rate (WARMUP_MS).
 * Prints one JSON line with latency percentiles and throughput, how late
 * the generator itself sent (open loop), and the CPU time it ran and waited
 * for (runnable, with the cores taken by other processes): on a shared
 * machine that wait, not the server, can be the tail.
 * usage: load-gen.js ADDRESS MODEL BATCH CONCURRENCY SECONDS NUM_DENSE IDS_JSON [RATE] [CA_FILE]
 * (CA_FILE: serving runs TLS; trust this CA). With SERVER_PID in the
 * environment, the server's CPU and wait over the same timed window too.
 */
const [address, model, batchS, concS, secondsS, numDenseS, idsJson, rateS, caFile] = process.argv.slice(2);
const rate = Number(rateS ?? 0);
const batch = Number(batchS);
const ids = JSON.parse(idsJson!) as string[][];
const numDense = Number(numDenseS);
const { prediction } = tfServingServices();
const rows = Array.from({ length: batch }, (_, e) => ids[e % ids.length]!);
// Packed little-endian tensor_content, as TensorFlow's make_tensor_proto sends it.
const denseBytes = Buffer.from(Float32Array.from({ length: batch * numDense }, (_, i) => (i % 7) * 0.3).buffer);
const idBytes = Buffer.from(BigUint64Array.from(rows.flat().map((x) => BigInt(x))).buffer);
const req = {
  model_spec: { name: model },
  inputs: {
    dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: batch }, { size: numDense }] }, tensor_content: denseBytes },
    feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: batch }, { size: rows[0]!.length }] }, tensor_content: idBytes },
  },
};
const predict = prediction.service.Predict!;
// The request is encoded once, and the timed answers are taken as bytes: the
// generator's own work would otherwise compete with the server for the same
// two cores. The warm-up answers are decoded in full and checked; the timed
// ones must have their length (same shape, packed floats).
const reqBytes = predict.requestSerialize(req);
const client = new H2UnaryClient(address!, caFile ? readFileSync(caFile) : undefined);
let expectLength = -1;
const call = async () => {
  const res = await client.call(predict.path, reqBytes, 10_000);
  if (expectLength < 0) {
    // One output per task (probabilities for a single click task), each [batch].
    const outputs = Object.entries((predict.responseDeserialize(res) as { outputs?: Record<string, { float_val?: number[] }> }).outputs ?? {});
    if (outputs.length === 0) throw new Error("an answer without outputs");
    for (const [name, t] of outputs) if (t.float_val?.length !== batch) throw new Error(`expected ${batch} values of output ${name}, got ${t.float_val?.length ?? "none"}`);
  } else if (res.length !== expectLength) throw new Error(`an answer of ${res.length} bytes; the checked ones had ${expectLength}`);
  return res.length;
};

const latencies: number[] = [];
let errors = 0;
/** Calls of the open loop's untimed first second that failed (counted apart: `errors` is of the timed calls). */
let warmupErrors = 0;
/** The first failed call's error, so a run with errors says what they were. */
let firstError: string | null = null;
const failed = (err: unknown, timed = true) => {
  if (timed) errors++;
  else warmupErrors++;
  firstError ??= (err as Error).message;
};
/** The server's process (SERVER_PID), whose CPU time is read over the same timed window as the generator's. */
const serverPid = Number(process.env.SERVER_PID ?? 0);
const cpus = () => ({ own: cpuOf(process.pid), server: serverPid ? cpuOf(serverPid) : null });
for (let i = 0; i < 19; i++) await call(); // warm-up, answers decoded and checked
expectLength = await call();
/**
 * Open loop: the first second at the rate is sent but not timed. A new
 * generator process sends late and slowly at first (its own code not yet
 * compiled for many calls in flight): measured, the first 300 ms of a 5 s
 * run at 1,111 requests/s held most of its p99 (29.7 ms over the whole run,
 * 19.6 ms without them, the same server). The schedule runs on through it.
 */
const WARMUP_MS = rate > 0 ? 1000 : 0;
let cpuBefore = cpus();
const t0 = performance.now();
const started = t0 + WARMUP_MS;
const until = started + Number(secondsS) * 1000;
let maxInFlight = 0;
/** Open loop: how late each request left against its schedule (the generator's own delay, part of its latency). */
const lateness: number[] = [];
if (rate > 0) {
  const interval = 1000 / rate;
  // Request k is due at t0 + k * interval (by index: no drift from summing intervals); the first `untimed` are the warm-up.
  const untimed = Math.round((rate * WARMUP_MS) / 1000);
  // Counted, not compared with `until`: (t0 + 1000) + 1000 can round above t0 + 2000 and let one request more in.
  const total = untimed + Math.round(rate * Number(secondsS));
  const inFlight = new Set<Promise<void>>();
  for (let k = 0; k < total; k++) {
    const scheduled = t0 + k * interval;
    const timed = k >= untimed;
    // Read before the wait, so the reads delay neither the first timed request nor its lateness.
    if (k === untimed) cpuBefore = cpus();
    const wait = scheduled - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (timed) lateness.push(performance.now() - scheduled);
    const p: Promise<void> = call().then(
      () => void (timed && latencies.push(performance.now() - scheduled)),
      (err: unknown) => void failed(err, timed),
    );
    inFlight.add(p);
    if (timed) maxInFlight = Math.max(maxInFlight, inFlight.size);
    void p.finally(() => inFlight.delete(p));
  }
  await Promise.all(inFlight);
} else {
  await Promise.all(
    Array.from({ length: Number(concS) }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        try {
          await call();
          latencies.push(performance.now() - t);
        } catch (err) {
          failed(err);
        }
      }
    }),
  );
}
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const q = (p: number) => quantile(latencies, p)!;
lateness.sort((a, b) => a - b);
const late = (p: number) => quantile(lateness, p) ?? null;
const cpu = cpus();
const server = cpu.server && cpuBefore.server ? { serverCpuMs: cpu.server.runMs - cpuBefore.server.runMs, serverCpuWaitMs: cpu.server.waitMs - cpuBefore.server.waitMs } : {};
console.log(JSON.stringify({
  batch, concurrency: rate > 0 ? maxInFlight : Number(concS), offeredRate: rate || null, sendLateP99Ms: late(0.99), sendLateP999Ms: late(0.999),
  requests: latencies.length, errors, warmupErrors, firstError, p50Ms: q(0.5), p99Ms: q(0.99), p999Ms: q(0.999), requestsPerSec: latencies.length / elapsed, examplesPerSec: (latencies.length * batch) / elapsed,
  generatorCpuMs: cpu.own.runMs - cpuBefore.own.runMs, generatorCpuWaitMs: cpu.own.waitMs - cpuBefore.own.waitMs, ...server,
}));
client.close();
