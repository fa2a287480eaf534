import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { SERVICE_V8_FLAGS } from "@pangea/kit";
import { Servable } from "../model/servable.js";

/**
 * `make bench` part: Predict latency and throughput at batch 1 and 64 under
 * concurrent load from a separate process on loopback, against the cost of
 * the same forward pass in-process (the serving overhead ratio): closed-loop
 * callers (capacity), then requests arriving at 25/50/75% of that capacity
 * (latency under load short of saturation).
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

// The services' heap flags: fewer collections mid-request (as the Dockerfile and `pangea serve` run it).
async function startServing(tls?: string): Promise<{ address: string; stop: () => void }> {
  const server = spawn(process.execPath, [...SERVICE_V8_FLAGS, join(here, "..", "main.js"), "--model-base-path", base!, "--model-name", "bench", "--port", "0", "--rest-port", "0", ...(tls ? ["--tls-dir", tls] : []), ...(process.env.PANGEA_BATCH_WINDOW_US ? ["--batch-window-us", process.env.PANGEA_BATCH_WINDOW_US] : [])], { stdio: ["ignore", "pipe", "ignore"] });
  const ready = JSON.parse(await new Promise<string>((resolve) => createInterface({ input: server.stdout! }).once("line", resolve))) as { address: string };
  return { address: ready.address, stop: () => server.kill("SIGTERM") };
}

const load = (address: string, batch: number, concurrency: number, rate = 0, ca?: string) => {
  const out = execFileSync(process.execPath, [join(here, "load-gen.js"), address, "bench", String(batch), String(concurrency), seconds, String(numDense), JSON.stringify(idRows), String(rate), ...(ca ? [ca] : [])], { encoding: "utf8" });
  return JSON.parse(out.trim().split("\n").at(-1)!) as { p50Ms: number; p99Ms: number; requestsPerSec: number; examplesPerSec: number; errors: number; concurrency: number };
};

let capacity = 0;
const plain = await startServing();
try {
  // Closed loop: callers that wait for each answer; the highest throughput is the server's capacity here.
  for (const [batch, concurrency] of [[1, 1], [1, 8], [64, 1], [64, 2], [64, 4], [64, 8]] as const) {
    const r = load(plain.address, batch, concurrency);
    if (batch === 64) capacity = Math.max(capacity, r.requestsPerSec);
    const forwardMs = inProcess(batch);
    console.log(JSON.stringify({ name: `serving Predict batch ${batch}, ${concurrency} concurrent`, ...r, inProcessForwardMs: forwardMs, overheadRatio: r.p50Ms / forwardMs }));
  }
  // Open loop: requests arriving at a fixed rate (a fraction of that capacity), overlapping in flight.
  for (const fraction of [0.25, 0.5, 0.75]) {
    const rate = Math.round(fraction * capacity);
    const r = load(plain.address, 64, 0, rate);
    console.log(JSON.stringify({ name: `serving Predict batch 64, open loop at ${rate} requests/s (${fraction * 100}% of capacity)`, ...r }));
  }
} finally {
  plain.stop();
}
if (tlsDir) {
  const tls = await startServing(tlsDir);
  const ca = join(tlsDir, "ca.crt");
  try {
    for (const concurrency of [1, 8]) {
      const r = load(tls.address, 64, concurrency, 0, ca);
      console.log(JSON.stringify({ name: `serving Predict batch 64, ${concurrency} concurrent, TLS`, ...r }));
    }
    const rate = Math.round(0.5 * capacity);
    console.log(JSON.stringify({ name: `serving Predict batch 64, open loop at ${rate} requests/s (50% of plaintext capacity), TLS`, ...load(tls.address, 64, 0, rate, ca) }));
  } finally {
    tls.stop();
  }
}
