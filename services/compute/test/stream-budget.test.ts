import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import { afterAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { batchStreamClient, waitReady, type BatchStreamClient } from "@pangea/rpc";
import { MessageType, Split, decodeMessage, encodeMessage, readFloat32, readIdWords } from "@pangea/schema";
import { ENTRY, closedPort, waitFor } from "../../../test/support/processes.js";
import { metricValue } from "../../../test/support/metrics.js";
import { fromPeer } from "../../../test/support/peer-named.js";

/**
 * What compute holds for batch streams together (a hostile-client trial:
 * 20 streams asking for 64 batches of 65,536 records each and never read
 * took compute from 167 MB to 1.6 GB and stalled training). Against a real
 * compute process, whose orchestrator never answers: it serves batches
 * while it waits to register.
 */

const live: ChildProcess[] = [];
const clients: BatchStreamClient[] = [];
afterAll(() => {
  for (const c of clients) c.close();
  for (const p of live) p.kill("SIGKILL");
});

interface Compute {
  child: ChildProcess;
  address: string;
  metrics: string;
  stderr: () => string;
}

async function startCompute(extra: string[]): Promise<Compute> {
  const [port, metricsPort, orchestratorPort] = [await closedPort(), await closedPort(), await closedPort()];
  const args = ["--port", String(port), "--metrics-port", String(metricsPort), "--orchestrator", `127.0.0.1:${orchestratorPort}`, "--connect-timeout-ms", "120000", "--eval-records", "1000", ...extra];
  const child = spawn(process.execPath, [ENTRY.compute, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  live.push(child);
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const address = `127.0.0.1:${port}`;
  const probe = batchStreamClient(address);
  try {
    await waitReady(probe, "compute", address, 20_000);
  } finally {
    probe.close();
  }
  return { child, address, metrics: `127.0.0.1:${metricsPort}`, stderr: () => err };
}

/** Resident memory of a process, in bytes (Linux). */
const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const metric = (c: { metrics?: string }, name: string) => metricValue(c.metrics!, name);

function request(batchSize: number, opts: { window?: number; maxBatches?: number; onDemand?: boolean } = {}): Buffer {
  return encodeMessage(MessageType.BATCH_REQUEST, "test", (r) => {
    r.workerRank = 0;
    r.worldSize = 1;
    r.batchSize = batchSize;
    r.maxBatches = BigInt(opts.maxBatches ?? 0);
    r.split = Split.TRAIN;
    r.window = opts.window ?? 0;
    r.onDemand = opts.onDemand ?? false;
  });
}

/** A client of its own for each stream (closed after the test). */
function client(c: Compute): BatchStreamClient {
  const cl = batchStreamClient(c.address);
  clients.push(cl);
  return cl;
}

/** A stream that asks for everything and is never read: no data listener, no acknowledgement. */
function unread(c: Compute, batchSize: number) {
  const call = client(c).streamBatches();
  let error: grpc.ServiceError | null = null;
  call.on("error", (e: grpc.ServiceError) => (error = e));
  call.write(request(batchSize, { window: 64, maxBatches: 1_000_000 }));
  return { call, error: () => error };
}

/** A trainer's on-demand feed: names batches, reads each and acknowledges it. */
async function fetchBatches(c: Compute, batchSize: number, indices: number[]): Promise<Buffer[]> {
  const call = client(c).streamBatches();
  call.write(request(batchSize, { onDemand: true }));
  call.write(
    encodeMessage(MessageType.BATCH_ACK, "test", (a) => {
      const l = a._initWant(indices.length);
      indices.forEach((k, i) => l.set(i, BigInt(k)));
    }),
  );
  const out: Buffer[] = [];
  for await (const b of call) {
    out.push(b as Buffer);
    call.write(encodeMessage(MessageType.BATCH_ACK, "test", (a) => (a.consumed = 1)));
    if (out.length === indices.length) break;
  }
  call.cancel();
  return out;
}

/** A batch's index and records (its header's send time aside). */
function content(b: Buffer) {
  const p = decodeMessage(b, MessageType.TRAINING_BATCH).payload;
  const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
  return { index: Number(p.batchIndex), labels: bytes(readFloat32(p.labels, "labels").data), ids: bytes(readIdWords(p.featureIds, "ids").words) };
}

describe("batch streams together", () => {
  it("20 streams never read: compute's memory stays bounded and a reading trainer still gets exactly its batches", async () => {
    const c = await startCompute(["--max-stream-mb", "16"]);
    const wanted = [0, 1, 2, 3, 4, 5, 6, 7];
    // Read once before the attack: the same indices must bring the same bytes during it.
    const before = await fetchBatches(c, 1024, wanted);
    await sleep(500);
    const base = rss(c.child.pid!);

    // 4,096-record batches are 1.5 MB: a window of 64 on 20 streams asks compute for 1.9 GB.
    const hostile = Array.from({ length: 20 }, () => unread(c, 4096));
    let peak = 0;
    let peakHeld = 0;
    const sample = setInterval(() => void metric(c, "pangea_compute_stream_bytes_unacked").then((v) => (peakHeld = Math.max(peakHeld, v ?? 0)), () => {}), 200);
    const sampleRss = setInterval(() => (peak = Math.max(peak, rss(c.child.pid!))), 100);
    try {
      await sleep(1_000);
      const t0 = Date.now();
      const during = await fetchBatches(c, 1024, wanted);
      const fetchMs = Date.now() - t0;
      expect(during.map(content)).toEqual(before.map(content));
      expect(during.map((b) => content(b).index)).toEqual(wanted);
      expect(fetchMs).toBeLessThan(5_000);
      await sleep(5_000);
    } finally {
      clearInterval(sample);
      clearInterval(sampleRss);
    }
    for (const h of hostile) expect(h.error()).toBeNull();
    const grown = peak - base;
    console.log(`20 unread streams: compute RSS ${(base / 2 ** 20).toFixed(0)} -> peak ${(peak / 2 ** 20).toFixed(0)} MB; unacknowledged bytes peak ${(peakHeld / 2 ** 20).toFixed(1)} MiB`);
    // The budget (16 MiB) plus one batch per stream: about 46 MB of batches, some of them copied on their way out.
    expect(peakHeld).toBeLessThanOrEqual(16 * 2 ** 20 + 21 * 1.6e6);
    expect(grown).toBeLessThan(200 * 2 ** 20);
    expect(await metric(c, "pangea_compute_batch_streams")).toBe(20);

    // Cancelled, the streams give their bytes and places back.
    for (const h of hostile) h.call.cancel();
    await waitFor("the streams' bytes back", async () => (await metric(c, "pangea_compute_stream_bytes_unacked")) === 0 && (await metric(c, "pangea_compute_batch_streams")) === 0, 10_000);
  }, 60_000);

  it("refuses a stream past --max-batch-streams with RESOURCE_EXHAUSTED naming the limit and the flag", async () => {
    const c = await startCompute(["--max-batch-streams", "3"]);
    const held = Array.from({ length: 3 }, () => unread(c, 64));
    await waitFor("three streams open", async () => (await metric(c, "pangea_compute_batch_streams")) === 3, 10_000);
    const refused = unread(c, 64);
    await waitFor("the fourth stream refused", async () => refused.error() !== null, 10_000);
    expect(refused.error()).toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: fromPeer("COMPUTE_ERR_STREAM_LIMIT: batch stream from test refused: compute serves at most 3 batch streams at once (--max-batch-streams)", "test"),
    });
    for (const h of held) expect(h.error()).toBeNull();
    // A place given back is a place for the next stream.
    held[0]!.call.cancel();
    await waitFor("a place free", async () => (await metric(c, "pangea_compute_batch_streams")) === 2, 10_000);
    expect((await fetchBatches(c, 64, [5])).length).toBe(1);
  }, 60_000);

  it("a client that half-closes (or acknowledges) without reading keeps its batches counted, and its place, until its call is over", async () => {
    // A raw HTTP/2 client: grpc-js clients read what arrives whatever the caller does; this one reads nothing, so
    // what compute writes stays in compute's buffers. Half-closing gave the bytes and the place back at once: a
    // helper's 12 such streams were all served past a cap of 3, compute's RSS up 320 MB with the metrics at 0.
    const c = await startCompute(["--max-stream-mb", "16", "--max-batch-streams", "3"]);
    const sessions: http2.ClientHttp2Session[] = [];
    const open = async (ack: boolean) => {
      const session = http2.connect(`http://${c.address}`, { settings: { initialWindowSize: 65_535 } });
      sessions.push(session);
      const stream = session.request({ ":method": "POST", ":path": "/pangea.v1.BatchStream/StreamBatches", "content-type": "application/grpc", te: "trailers" });
      stream.pause();
      const status = new Promise<string | undefined>((r) => stream.on("response", (h) => r(h["grpc-status"] as string | undefined)));
      const frame = (msg: Buffer) => Buffer.concat([Buffer.from([0, msg.length >>> 24, (msg.length >>> 16) & 255, (msg.length >>> 8) & 255, msg.length & 255]), msg]);
      stream.write(frame(request(16_384, { window: 4, maxBatches: 1_000_000 })));
      await sleep(1_000);
      // Acknowledging batches it never read frees nothing either.
      if (ack) stream.write(frame(encodeMessage(MessageType.BATCH_ACK, "test", (a) => (a.consumed = 1))));
      stream.end();
      await sleep(500);
      return status;
    };
    for (const ack of [false, true, false]) await open(ack);
    expect(await metric(c, "pangea_compute_batch_streams")).toBe(3);
    expect(await metric(c, "pangea_compute_stream_bytes_unacked")).toBeGreaterThan(0);
    // The fourth is refused at once (a trailers-only answer, RESOURCE_EXHAUSTED).
    expect(await Promise.race([open(false), sleep(5_000).then(() => "none")])).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    for (const s of sessions) s.destroy();
    await waitFor("the streams' bytes and places back once their calls are over", async () => (await metric(c, "pangea_compute_stream_bytes_unacked")) === 0 && (await metric(c, "pangea_compute_batch_streams")) === 0, 10_000);
  }, 60_000);

  it("refuses a --max-stream-mb or --max-batch-streams of 0", async () => {
    for (const flag of ["--max-stream-mb", "--max-batch-streams"]) {
      const child = spawn(process.execPath, [ENTRY.compute, flag, "0"], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((r) => child.on("exit", r));
      expect(code, err).toBe(2);
      expect(err).toContain(flag);
    }
  }, 30_000);
});
