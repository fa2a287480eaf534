import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { createLogger } from "@pangea/kit";
import { BATCH_STREAM_SERVICE_NAME, batchStreamClient, startServer, type RunningServer } from "@pangea/rpc";
import { MessageType, Split, decodeMessage, encodeMessage, readFloat32 } from "@pangea/schema";
import { KafkaFixtureBroker } from "@pangea/test-utils";
import { KafkaSource } from "../src/sources/kafka-source.js";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { BatchStreamHandler } from "../src/server/batch-stream.js";
import { compileFeatureList } from "@pangea/features";
import { encodeInstance } from "@pangea/monolith";

/** At-least-once delivery from Kafka through the batch stream, against the test broker fixture. */
const synthetic = new SyntheticSource({ seed: 21, evalRecords: 0 });
const topic = "pangea-at-least-once";
const group = "pangea-compute-test";
const B = 50;
let broker: KafkaFixtureBroker;
let source: KafkaSource;
let server: RunningServer;
let handler: BatchStreamHandler;

beforeAll(async () => {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";
  broker = await KafkaFixtureBroker.start({ defaultPartitions: 2 });
  const kafka = new Kafka({ clientId: "t", brokers: [broker.address], logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: Array.from({ length: 400 }, (_, i) => ({ value: Buffer.from(encodeInstance(synthetic.plainSample("train", i))) })) });
  await producer.disconnect();
  const log = createLogger("kafka-test", "silent");
  source = await KafkaSource.open({
    brokers: [broker.address], topic, groupId: group, message: "instance",
    featureList: compileFeatureList(synthetic.featureListConfig("fid_v1"), "test"),
    onBadRecord: "fail", maxQueued: 1000, idleTimeoutMs: 1500, log,
  });
  handler = new BatchStreamHandler(source, "compute-test", log);
  server = await startServer("127.0.0.1", 0, (s) => handler.addToServer(s), [BATCH_STREAM_SERVICE_NAME]);
});

afterAll(async () => {
  await server?.shutdown(100);
  await source?.close();
  await broker?.stop();
});

const committed = () => (broker.committed(group, topic, 0) ?? 0n) + (broker.committed(group, topic, 1) ?? 0n);
const request = (maxBatches: number, window: number, split = Split.TRAIN) =>
  encodeMessage(MessageType.BATCH_REQUEST, "t", (r) => {
    r.workerRank = 0;
    r.worldSize = 1;
    r.batchSize = B;
    r.maxBatches = BigInt(maxBatches);
    r.split = split;
    r.window = window;
  });
const ack = (n: number) => encodeMessage(MessageType.BATCH_ACK, "t", (a) => (a.consumed = n));

async function waitFor(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("Kafka source: offsets are committed only for acknowledged batches", () => {
  it("commits after acks, never before, and hands a vanished trainer's batches to the next one", async () => {
    const client = batchStreamClient(server.address);
    const call = client.streamBatches();
    call.on("error", () => {});
    const got: Buffer[] = [];
    call.on("data", (b: Buffer) => got.push(b));
    call.write(request(0, 3));
    await waitFor("3 batches", () => got.length === 3);
    await new Promise((r) => setTimeout(r, 300));
    expect(committed()).toBe(0n); // received, not yet trained on
    call.write(ack(1));
    await waitFor("the first batch's commit", () => committed() === BigInt(B));
    await waitFor("a 4th batch (the ack freed a credit)", () => got.length === 4);
    // The trainer vanishes with 3 batches unacknowledged.
    call.cancel();
    client.close();
    await waitFor("the vanished trainer's 3 batches put back", () => source.stats().redelivered === 3 * B);
    expect(committed()).toBe(BigInt(B));
    expect(source.stats().redelivered).toBe(3 * B);

    // The next trainer gets those records again, and acknowledging them commits them.
    const client2 = batchStreamClient(server.address);
    const call2 = client2.streamBatches();
    const got2: Buffer[] = [];
    call2.on("data", (b: Buffer) => {
      got2.push(b);
      call2.write(ack(1));
    });
    const ended = new Promise<void>((r) => call2.on("end", () => r()));
    call2.write(request(7, 2));
    await ended;
    call2.end();
    await waitFor("all 8 batches' commit", () => committed() === BigInt(8 * B)).catch((e) => {
      throw new Error(`${(e as Error).message}: committed ${committed()}, stats ${JSON.stringify(source.stats())}`);
    });
    client2.close();
    expect(got2).toHaveLength(7);
    const labelsOf = (bs: Buffer[]) => bs.flatMap((b) => Array.from(readFloat32(decodeMessage(b, MessageType.TRAINING_BATCH).payload.labels, "labels").data));
    expect(labelsOf(got2.slice(0, 3))).toEqual(labelsOf(got.slice(1, 4)));
    // Consumer lag per partition (the fixture reports each partition's high watermark): known for both, and 0 once all 400 are fetched.
    expect([...source.lag().keys()].sort()).toEqual([0, 1]);
    expect([...source.lag().values()]).toEqual([0, 0]);
  });

  it("sends no eval batches (a stream has no held-out split)", async () => {
    const client = batchStreamClient(server.address);
    const call = client.streamBatches();
    const got: Buffer[] = [];
    call.on("data", (b: Buffer) => got.push(b));
    const ended = new Promise<void>((r) => call.on("end", () => r()));
    call.write(request(0, 2, Split.EVAL));
    await ended;
    client.close();
    expect(got).toHaveLength(0);
  });
});

describe("Kafka source: a crashed compute loses no record", () => {
  it("a new consumer in the group starts right after the last acknowledged record", async () => {
    const log = createLogger("kafka-test", "silent");
    const open = () =>
      KafkaSource.open({
        brokers: [broker.address], topic, groupId: "crash-group", message: "instance",
        featureList: compileFeatureList(synthetic.featureListConfig("fid_v1"), "test"),
        onBadRecord: "fail", maxQueued: 1000, idleTimeoutMs: 1500, log,
      });
    const first = await open();
    const a = await first.nextBatch(100, () => false);
    const b = await first.nextBatch(100, () => false);
    a!.ack();
    await waitFor("the commit of batch a", () => (broker.committed("crash-group", topic, 0) ?? 0n) + (broker.committed("crash-group", topic, 1) ?? 0n) === 100n);
    // Crash: batch b was handed out but never acknowledged.
    void b;
    await first.close();
    const second = await open();
    const labels: number[] = [];
    for (;;) {
      const next = await second.nextBatch(100, () => false);
      if (!next) break;
      labels.push(...next.block.labels.subarray(0, next.block.count));
      next.ack();
    }
    await second.close();
    // Everything but the acknowledged 100 records comes again, b's among them: 400 produced in all.
    expect(labels).toHaveLength(300);
  });
});
