import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { SERVICE_MALLOC_ENV, SERVICE_V8_FLAGS } from "@pangea/kit";
import { Servable } from "../model/servable.js";
import { wakeLateness } from "./wake-lateness.js";

/**
 * `make bench` part: Predict latency and throughput at batch 1 and 64 under
 * concurrent load from a separate process on loopback, against the cost of
 * the same forward pass in-process (the serving overhead ratio): closed-loop
 * callers (capacity), then requests arriving at 25/50/75% of that capacity
 * (latency under load short of saturation). Two servers run side by side,
 * passes in the event loop (--forward-threads 0, the old server) and on one
 * forward thread (the default), measured in turn at each load.
 * With TLS_DIR (certificates from pangea certs), the same server is started
 * again with --tls-dir and the batch-64 figures are measured over TLS, so
 * both appear in one run.
 * usage: serving-bench.js MODEL_BASE_PATH [SECONDS] [TLS_DIR]
 */
const [base, secondsArg, tlsDir] = process.argv.slice(2);
const seconds = secondsArg ?? "5";
const here = fileURLToPath(new URL(".", import.meta.url));
const version = 1;
const servable = Servable.load(join(base!, String(version)), version);
const { numDense, numSlots } = servable.spec;
// Ids the model has rows for: the first 64 of each slot's table.
const perSlot = servable.slotIds.map((slot) => {
  const b = readFileSync(join(base!, String(version), `slot-${slot}.ids.u64`));
  return Array.from({ length: Math.min(64, b.length / 8) }, (_, i) => b.readBigUInt64LE(i * 8));
});
const idRows = Array.from({ length: 64 }, (_, e) => perSlot.map((ids) => ids[e % ids.length]!.toString()));

function inProcess(batch: number): number {
  const dense = Float32Array.from({ length: batch * numDense }, (_, i) => (i % 7) * 0.3);
  const idWords = new Uint32Array(batch * numSlots * 2);
  for (let e = 0; e < batch; e++) for (let s = 0; s < numSlots; s++) {
    const id = BigInt(idRows[e % idRows.length]![s]!);
    idWords[2 * (e * numSlots + s)] = Number(id & 0xffffffffn);
    idWords[2 * (e * numSlots + s) + 1] = Number(id >> 32n);
  }
  for (let i = 0; i < 200; i++) servable.predict({ count: batch, dense, idWords });
  const n = 2000;
  const t = performance.now();
  for (let i = 0; i < n; i++) servable.predict({ count: batch, dense, idWords });
  return (performance.now() - t) / n;
}

/** The configurations compared in one run: forward threads (PANGEA_BENCH_FORWARD_THREADS, e.g. "0,1"; 0 = passes in the event loop, the old single-loop server). */
const threadCounts = (process.env.PANGEA_BENCH_FORWARD_THREADS ?? "0,1").split(",").map(Number);
if (threadCounts.some((n) => !Number.isInteger(n) || n < 0)) throw new Error(`PANGEA_BENCH_FORWARD_THREADS: expected thread counts like "0,1", got "${process.env.PANGEA_BENCH_FORWARD_THREADS}"`);
const label = (threads: number) => (threads === 0 ? "passes in the event loop" : `${threads} forward thread${threads > 1 ? "s" : ""}`);

interface Server {
  address: string;
  rest: string;
  pid: number;
  stop: () => void;
}

// The services' heap settings, as the Dockerfile and `pangea serve` run it (packages/kit: V8 flags for fewer collections mid-request, malloc thresholds for large buffers).
async function startServing(threads: number, tls?: string): Promise<Server> {
  const server = spawn(process.execPath, [...SERVICE_V8_FLAGS, join(here, "..", "main.js"), "--model-base-path", base!, "--model-name", "bench", "--port", "0", "--rest-port", "0", "--forward-threads", String(threads), ...(tls ? ["--tls-dir", tls] : []), ...(process.env.PANGEA_BATCH_WINDOW_US ? ["--batch-window-us", process.env.PANGEA_BATCH_WINDOW_US] : [])], { stdio: ["ignore", "pipe", "ignore"], env: { ...SERVICE_MALLOC_ENV, ...process.env } });
  const ready = JSON.parse(await new Promise<string>((resolve) => createInterface({ input: server.stdout! }).once("line", resolve))) as { address: string; rest: string };
  return { address: ready.address, rest: ready.rest, pid: server.pid!, stop: () => server.kill("SIGTERM") };
}

interface LoadResult {
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  requestsPerSec: number;
  examplesPerSec: number;
  errors: number;
  concurrency: number;
  sendLateP99Ms: number | null;
  generatorCpuWaitMs: number;
  serverCpuMs: number;
  serverCpuWaitMs: number;
  warmupErrors: number;
}

/** A metric's value from serving's /metrics (prom-client resets the event-loop lag figures at each read). */
async function scrape(server: Server, tls: boolean): Promise<(name: string) => number> {
  if (tls) return () => NaN;
  const text = await (await fetch(`http://${server.rest}/metrics`)).text();
  return (name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
}

/**
 * One load run, with what the server went through meanwhile: its event
 * loop's delay (p99 and max, from prom-client's monitor) and the time its
 * threads waited for a core other processes held (/proc schedstat), next to
 * the generator's own wait and lateness: which of them made the tail.
 */
async function load(server: Server, batch: number, concurrency: number, rate = 0, ca?: string) {
  const m0 = await scrape(server, !!ca);
  // The generator reads the server's CPU over its own timed window (after the open loop's untimed first second).
  const out = execFileSync(process.execPath, [join(here, "load-gen.js"), server.address, "bench", String(batch), String(concurrency), seconds, String(numDense), JSON.stringify(idRows), String(rate), ...(ca ? [ca] : [])], { encoding: "utf8", env: { ...process.env, SERVER_PID: String(server.pid) } });
  const m = await scrape(server, !!ca);
  const r = JSON.parse(out.trim().split("\n").at(-1)!) as LoadResult;
  // The loop-delay figures (reset at each read) cover the whole run, its untimed second included; shed is a counter.
  return { ...r, serverLoopDelayP99Ms: 1000 * m("pangea_nodejs_eventloop_lag_p99_seconds"), serverLoopDelayMaxMs: 1000 * m("pangea_nodejs_eventloop_lag_max_seconds"), shed: m("pangea_serving_shed_requests_total") - m0("pangea_serving_shed_requests_total") };
}

const emit = (name: string, r: object) => console.log(JSON.stringify({ name, ...r }));
// The machine's own floor under a tail, read while nothing of ours runs: how late a sleeping process is woken.
emit("timer wake-up lateness before the servers start (1 ms timers, 5 s)", await wakeLateness(5));
const servers = new Map<number, Server>();
const capacity = new Map<number, number>();
try {
  for (const t of threadCounts) servers.set(t, await startServing(t));
  const main = threadCounts.at(-1)!;
  // Closed loop: callers that wait for each answer. The full table for the last configuration (the default one).
  for (const [batch, concurrency] of [[1, 1], [1, 8], [64, 1], [64, 2]] as const) {
    const r = await load(servers.get(main)!, batch, concurrency);
    const forwardMs = inProcess(batch);
    emit(`serving Predict batch ${batch}, ${concurrency} concurrent, ${label(main)}`, { ...r, inProcessForwardMs: forwardMs, overheadRatio: r.p50Ms / forwardMs });
  }
  // Capacity: the highest closed-loop throughput at batch 64, each configuration in turn (alternating, so both see the same machine).
  for (const concurrency of [4, 8]) {
    for (const t of threadCounts) {
      const r = await load(servers.get(t)!, 64, concurrency);
      capacity.set(t, Math.max(capacity.get(t) ?? 0, r.requestsPerSec));
      const forwardMs = inProcess(64);
      emit(`serving Predict batch 64, ${concurrency} concurrent, ${label(t)}`, { ...r, inProcessForwardMs: forwardMs, overheadRatio: r.p50Ms / forwardMs });
    }
  }
  for (const t of threadCounts) emit(`serving capacity at batch 64, ${label(t)}`, { capacityRequestsPerSec: capacity.get(t), capacityExamplesPerSec: 64 * capacity.get(t)! });
  // Open loop: requests arriving at a fixed rate (a fraction of each configuration's own capacity), overlapping in flight.
  for (const fraction of [0.25, 0.5, 0.75]) {
    for (const t of threadCounts) {
      const rate = Math.round(fraction * capacity.get(t)!);
      emit(`serving Predict batch 64, open loop at ${rate} requests/s (${fraction * 100}% of capacity), ${label(t)}`, await load(servers.get(t)!, 64, 0, rate));
    }
  }
} finally {
  for (const s of servers.values()) s.stop();
}
if (tlsDir) {
  const main = threadCounts.at(-1)!;
  const tls = await startServing(main, tlsDir);
  const ca = join(tlsDir, "ca.crt");
  try {
    for (const concurrency of [1, 8]) emit(`serving Predict batch 64, ${concurrency} concurrent, TLS, ${label(main)}`, await load(tls, 64, concurrency, 0, ca));
    const rate = Math.round(0.5 * capacity.get(main)!);
    emit(`serving Predict batch 64, open loop at ${rate} requests/s (50% of plaintext capacity), TLS, ${label(main)}`, await load(tls, 64, 0, rate, ca));
  } finally {
    tls.stop();
  }
}
