import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { createLogger } from "@pangea/kit";
import { BATCH_STREAM_SERVICE_NAME, batchStreamClient, startServer, type RunningServer } from "@pangea/rpc";
import { MessageType, Split, decodeMessage, encodeMessage, readFloat32, readIdWords } from "@pangea/schema";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { BatchStreamHandler } from "../src/server/batch-stream.js";
import { HEALTH_SERVING, checkHealth } from "../../../test/support/health.js";
import { slotOfV2 } from "@pangea/features";
import { fromPeer } from "../../../test/support/peer-named.js";

const source = new SyntheticSource({ seed: 3, evalRecords: 1000 });
const handler = new BatchStreamHandler(source, "compute-test", createLogger("compute-test", "silent"));
let server: RunningServer;

beforeAll(async () => {
  server = await startServer("127.0.0.1", 0, (s) => handler.addToServer(s), [BATCH_STREAM_SERVICE_NAME]);
});
afterAll(() => server.shutdown(100));

function request(rank: number, world: number, batchSize: number, maxBatches: number, split: "train" | "eval" = "train", window = 0, onDemand = false): Buffer {
  return encodeMessage(MessageType.BATCH_REQUEST, "test", (r) => {
    r.onDemand = onDemand;
    r.workerRank = rank;
    r.worldSize = world;
    r.batchSize = batchSize;
    r.maxBatches = BigInt(maxBatches);
    r.split = split === "eval" ? Split.EVAL : Split.TRAIN;
    r.window = window;
  });
}

const ack = (n: number) => encodeMessage(MessageType.BATCH_ACK, "test", (a) => (a.consumed = n));
const want = (indices: number[]) =>
  encodeMessage(MessageType.BATCH_ACK, "test", (a) => {
    const l = a._initWant(indices.length);
    indices.forEach((k, i) => l.set(i, BigInt(k)));
  });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens a stream, sends `first`, and collects what comes back until it ends; never acknowledges. */
function open(first: Buffer) {
  const client = batchStreamClient(server.address);
  const call = client.streamBatches();
  const received: Buffer[] = [];
  let error: grpc.ServiceError | null = null;
  const ended = new Promise<void>((resolve) => {
    call.on("data", (b: Buffer) => received.push(b));
    call.on("error", (e: grpc.ServiceError) => {
      error = e;
      resolve();
    });
    call.on("end", () => resolve());
  });
  call.write(first);
  return { call, received, ended, error: () => error, close: () => client.close() };
}

/** Reads a whole share, acknowledging each batch as a trainer does. */
async function readAll(req: Buffer): Promise<Buffer[]> {
  const client = batchStreamClient(server.address);
  const out: Buffer[] = [];
  try {
    const call = client.streamBatches();
    call.write(req);
    for await (const b of call) {
      out.push(b as Buffer);
      call.write(ack(1));
    }
  } finally {
    client.close();
  }
  return out;
}

describe("BatchStream over gRPC", () => {
  it("reports SERVING on grpc.health.v1", async () => {
    expect(await checkHealth(server.address, BATCH_STREAM_SERVICE_NAME)).toBe(HEALTH_SERVING);
  });

  it("gives two workers disjoint shares that together are the whole eval split", async () => {
    const [a, b] = await Promise.all([readAll(request(0, 2, 128, 0, "eval")), readAll(request(1, 2, 128, 0, "eval"))]);
    const indexes = (bs: Buffer[]) => bs.map((x) => Number(decodeMessage(x, MessageType.TRAINING_BATCH).payload.batchIndex));
    expect(indexes(a)).toEqual([0, 2, 4, 6]);
    expect(indexes(b)).toEqual([1, 3, 5, 7]);
    const sizes = [...a, ...b].map((x) => readFloat32(decodeMessage(x, MessageType.TRAINING_BATCH).payload.labels, "labels").data.length);
    expect(sizes.reduce((s, n) => s + n, 0)).toBe(1000);
    // v2 ids of slot 1 in the first cell
    const first = decodeMessage(a[0]!, MessageType.TRAINING_BATCH).payload;
    expect(slotOfV2(readIdWords(first.featureIds, "ids").words[1]!)).toBe(1);
  });

  it("sends no more than the credit window ahead of the client's acknowledgements", async () => {
    const client = batchStreamClient(server.address);
    const call = client.streamBatches();
    call.on("error", () => {}); // the cancel below ends the call with CANCELLED
    const received: Buffer[] = [];
    call.on("data", (b: Buffer) => received.push(b));
    const before = handler.batchesServed;
    // Polled for, then a pause in which no more may come (a fixed sleep alone was too short on a loaded machine).
    const until = async (n: number) => {
      for (const end = Date.now() + 20_000; received.length < n && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
    };
    call.write(request(0, 1, 1024, 100_000, "train", 3));
    await until(3);
    // 100,000 batches were asked for; without acknowledgements only the window is produced.
    expect(handler.batchesServed - before).toBe(3);
    expect(received).toHaveLength(3);
    call.write(ack(2));
    await until(5);
    expect(handler.batchesServed - before).toBe(5);
    expect(received.map((b) => Number(decodeMessage(b, MessageType.TRAINING_BATCH).payload.batchIndex))).toEqual([0, 1, 2, 3, 4]);
    call.cancel();
    client.close();
  });

  it("refuses a window above the maximum", async () => {
    await expect(readAll(request(0, 1, 8, 1, "train", 1000))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: fromPeer("COMPUTE_ERR_BAD_REQUEST: batch request from test: window 1000 is above 64", "test"),
    });
  });

  it("answers an inconsistent request with INVALID_ARGUMENT naming the problem", async () => {
    await expect(readAll(request(3, 2, 128, 1))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: fromPeer("COMPUTE_ERR_BAD_REQUEST: batch request from test: worker_rank 3 is not below world_size 2", "test"),
    });
  });

  it("answers bytes that are not a BatchRequest with INVALID_ARGUMENT", async () => {
    await expect(readAll(Buffer.from("not capnp!"))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });

  it.each([
    ["0", 0],
    ["2^32-1", 2 ** 32 - 1],
    ["65537", 65_537],
  ])("refuses batch size %s at the request with INVALID_ARGUMENT naming batch_size, share or on-demand", async (_what, size) => {
    for (const onDemand of [false, true]) {
      const s = open(request(0, 1, size, 10, "train", 0, onDemand));
      await Promise.race([s.ended, sleep(5_000)]);
      s.close();
      expect(s.error(), `onDemand ${onDemand}`).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: fromPeer(`COMPUTE_ERR_BAD_REQUEST: batch request from test: batch_size ${size} is outside 1..65536`, "test"),
      });
      expect(s.received).toHaveLength(0);
    }
  });

  it("refuses world_size 0 with INVALID_ARGUMENT naming world_size", async () => {
    const s = open(request(0, 0, 8, 1));
    await Promise.race([s.ended, sleep(5_000)]);
    s.close();
    expect(s.error()).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: fromPeer("COMPUTE_ERR_BAD_REQUEST: batch request from test: world_size 0 must be at least 1", "test") });
  });

  it("on demand: sends no more than the credit window of wanted batches ahead of the acknowledgements", async () => {
    const s = open(request(0, 1, 64, 0, "train", 2, true));
    const before = handler.batchesServed;
    s.call.write(want(Array.from({ length: 50 }, (_, k) => k)));
    await sleep(500);
    expect(s.received).toHaveLength(2);
    expect(handler.batchesServed - before).toBe(2);
    s.call.write(ack(1));
    await sleep(300);
    expect(s.received.map((b) => Number(decodeMessage(b, MessageType.TRAINING_BATCH).payload.batchIndex))).toEqual([0, 1, 2]);
    s.call.cancel();
    s.close();
  });

  it("on demand: stops producing once the client cancels", async () => {
    const s = open(request(0, 1, 64, 0, "train", 64, true));
    s.call.write(want(Array.from({ length: 4096 }, (_, k) => k)));
    // Acknowledge everything as it arrives, so credit never runs out; then cancel.
    s.call.on("data", () => s.call.write(ack(1)));
    const before = handler.batchesServed;
    await sleep(300);
    s.call.cancel();
    await sleep(100);
    const atCancel = handler.batchesServed;
    await sleep(500);
    expect(handler.batchesServed - atCancel).toBe(0);
    expect(atCancel - before).toBeLessThan(4096);
    s.close();
  });

  it("refuses an acknowledgement of more batches than were sent", async () => {
    const s = open(request(0, 1, 64, 0, "train", 2, true));
    s.call.write(ack(2 ** 32 - 1));
    await Promise.race([s.ended, sleep(5_000)]);
    s.close();
    expect(s.error()).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: "COMPUTE_ERR_BAD_REQUEST: batch ack from test: consumed 4294967295, but 0 batches are unacknowledged",
    });
  });

  it("on demand: a client that half-closes with no credit left gets the end of the stream, not a hang", async () => {
    const s = open(request(0, 1, 64, 0, "train", 2, true));
    s.call.write(want(Array.from({ length: 10 }, (_, k) => k)));
    await sleep(300);
    expect(s.received).toHaveLength(2);
    s.call.end();
    const ended = await Promise.race([s.ended.then(() => true), sleep(3_000).then(() => false)]);
    s.close();
    expect(ended).toBe(true);
    expect(s.error()).toBeNull();
    expect(s.received).toHaveLength(2);
  });
});
