import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { KafkaFixtureBroker } from "@pangea/test-utils";

/**
 * The real kafkajs client over TCP against the test broker fixture, or
 * against a real Kafka when KAFKA_BROKERS=host:port[,...] is set.
 */
const REAL = process.env.KAFKA_BROKERS;
let fixture: KafkaFixtureBroker | null = null;
let brokers: string[] = [];
const topic = `pangea-fixture-${Date.now()}`;

beforeAll(async () => {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";
  if (REAL) brokers = REAL.split(",");
  else {
    fixture = await KafkaFixtureBroker.start({ defaultPartitions: 2 });
    brokers = [fixture.address];
  }
});
afterAll(() => fixture?.stop());

describe(`kafkajs against ${REAL ? `Kafka at ${REAL}` : "the test broker fixture"}`, () => {
  it("a consumer group reads every produced message once and commits the offsets it processed", async () => {
    const kafka = new Kafka({ clientId: "fixture-test", brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: Array.from({ length: 200 }, (_, i) => ({ key: String(i % 7), value: `v${i}` })) });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `${topic}-g`, sessionTimeout: 6000, heartbeatInterval: 300 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got: string[] = [];
    await new Promise<void>((resolve) => {
      void consumer.run({
        autoCommit: false,
        eachMessage: async ({ message, partition }) => {
          got.push(message.value!.toString());
          await consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
          if (got.length === 200) resolve();
        },
      });
    });
    await consumer.disconnect();
    expect([...got].sort()).toEqual(Array.from({ length: 200 }, (_, i) => `v${i}`).sort());
    if (fixture) {
      const committed = (fixture.committed(`${topic}-g`, topic, 0) ?? 0n) + (fixture.committed(`${topic}-g`, topic, 1) ?? 0n);
      expect(committed).toBe(200n);
    }
  });

  it("a second consumer of the same group resumes after the committed offsets", async () => {
    const kafka = new Kafka({ clientId: "fixture-test-2", brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: Array.from({ length: 20 }, (_, i) => ({ value: `late${i}` })) });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId: `${topic}-g`, sessionTimeout: 6000, heartbeatInterval: 300 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got: string[] = [];
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          got.push(message.value!.toString());
          if (got.length === 20) resolve();
        },
      });
    });
    await new Promise((r) => setTimeout(r, 300));
    await consumer.disconnect();
    expect(got.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `late${i}`).sort());
  });

  it.runIf(!REAL)("the fixture refuses a record batch whose CRC fails", async () => {
    const { KafkaWriter } = await import("@pangea/test-utils");
    const { Socket } = await import("node:net");
    const batch = Buffer.alloc(61 + 8);
    batch.writeInt32BE(batch.length - 12, 8);
    batch.writeInt8(2, 16);
    batch.writeUInt32BE(12345, 17);
    const body = new KafkaWriter().int16(0).int16(3).int32(7).string("raw").string(null).int16(1).int32(1000)
      .array([topic], (w, t) => w.string(t).array([0], (x, p) => x.int32(p).bytes(batch))).finish();
    const s = new Socket();
    await new Promise<void>((r) => s.connect(fixture!.port, "127.0.0.1", () => r()));
    const head = Buffer.alloc(4);
    head.writeInt32BE(body.length);
    s.write(Buffer.concat([head, body]));
    const reply = await new Promise<Buffer>((r) => s.once("data", r));
    s.destroy();
    // correlation id, topic, partition, then error code 2 (CORRUPT_MESSAGE)
    const errorAt = 4 + 4 + 4 + 2 + topic.length + 4 + 4;
    expect(reply.readInt16BE(errorAt)).toBe(2);
  });
});
