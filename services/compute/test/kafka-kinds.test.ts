import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { createLogger } from "@pangea/kit";
import { KafkaFixtureBroker } from "@pangea/test-utils";
import { compileFeatureList } from "@pangea/features";
import { encodeExample, encodeExampleBatch, encodeInstance } from "@pangea/monolith";
import { KafkaSource } from "../src/sources/kafka-source.js";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { ComputeErrors } from "../src/errors.js";

/**
 * A topic read with another --format than its messages' kind: refused after its first two messages, naming the kind
 * they decode as, with no offset committed (skipping would commit the whole topic past the group). Against the test
 * broker fixture (no Kafka broker runs here).
 */
const synthetic = new SyntheticSource({ seed: 5, evalRecords: 0 });
const samples = Array.from({ length: 96 }, (_, i) => synthetic.plainSample("train", i));
const featureList = compileFeatureList(synthetic.featureListConfig("fid_v2"), "test");
let broker: KafkaFixtureBroker;
let kafka: Kafka;

beforeAll(async () => {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";
  broker = await KafkaFixtureBroker.start({ defaultPartitions: 1 });
  kafka = new Kafka({ clientId: "t", brokers: [broker.address], logLevel: logLevel.NOTHING });
});

afterAll(async () => {
  await broker?.stop();
});

async function produce(topic: string, values: Uint8Array[]): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: values.map((v) => ({ value: Buffer.from(v) })) });
  await producer.disconnect();
}

const open = (topic: string, message: "instance" | "example" | "examplebatch", onBadRecord: "fail" | "skip") =>
  KafkaSource.open({ brokers: [broker.address], topic, groupId: `g-${topic}`, message, featureList, onBadRecord, maxQueued: 1000, idleTimeoutMs: 1000, log: createLogger("kafka-kinds", "silent") });

/** Reads the topic to its end (acknowledging every batch); the samples read, or the error that ended it. */
async function drain(source: KafkaSource): Promise<{ samples: number; error: unknown }> {
  let n = 0;
  try {
    for (;;) {
      const b = await source.nextBatch(32, () => false);
      if (!b) return { samples: n, error: null };
      n += b.block.count;
      b.ack();
    }
  } catch (err) {
    return { samples: n, error: err };
  } finally {
    await source.close();
  }
}

describe("a Kafka topic read as another message kind", () => {
  it.each([
    ["examplebatch", "example", "skip"],
    ["example", "instance", "skip"],
    ["instance", "examplebatch", "fail"],
  ] as const)("a topic of %s messages read with --format %s (--on-bad-record %s): refused naming the kind, nothing committed", async (kind, format, policy) => {
    const topic = `kinds-${kind}-as-${format}`;
    await produce(topic, kind === "examplebatch" ? [0, 1, 2].map((b) => encodeExampleBatch(samples.slice(b * 32, b * 32 + 32))) : samples.map(kind === "example" ? encodeExample : encodeInstance));
    const { samples: got, error } = await drain(await open(topic, format, policy));
    expect(got).toBe(0);
    expect(ComputeErrors.is(error, "COMPUTE_ERR_BAD_CONFIG"), String(error)).toBe(true);
    expect((error as Error).message).toBe(
      `topic ${topic}: its first messages (partition 0 offset 0 and partition 0 offset 1) are not ${format} records but decode as Monolith ${kind} records: read the topic with --format ${kind} (no offset was committed past them)`,
    );
    expect(broker.committed(`g-${topic}`, topic, 0) ?? 0n).toBe(0n);
    // Read again with the right kind, the group finds every message still unread.
    expect(await drain(await open(topic, kind, "fail"))).toEqual({ samples: samples.length, error: null });
  });

  it("a topic whose only message is of another kind is refused when the stream goes idle", async () => {
    const topic = "kinds-one-batch";
    await produce(topic, [encodeExampleBatch(samples.slice(0, 8))]);
    const { error } = await drain(await open(topic, "instance", "skip"));
    expect((error as Error).message).toMatch(/^topic kinds-one-batch: its only message \(partition 0 offset 0\) is not an instance record but decodes as a Monolith examplebatch record: read the topic with --format examplebatch \(no offset was committed past it\)$/);
  });

  it.each([
    ["a null value", null],
    ["an empty value", new Uint8Array(0)],
    ["a damaged batch", encodeExampleBatch(samples.slice(0, 32)).slice(0, 40)],
  ] as const)("a topic of ExampleBatches read as Examples whose first message is %s: refused still, that message skipped", async (what, first) => {
    const topic = `kinds-first-unusable-${what.replace(/ /g, "-")}`;
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ value: first === null ? null : Buffer.from(first) }, ...[1, 2].map((b) => ({ value: Buffer.from(encodeExampleBatch(samples.slice(b * 32, b * 32 + 32))) }))] });
    await producer.disconnect();
    const { error } = await drain(await open(topic, "example", "skip"));
    expect((error as Error).message).toBe(
      `topic ${topic}: its first messages (partition 0 offset 1 and partition 0 offset 2) are not example records but decode as Monolith examplebatch records: read the topic with --format examplebatch (no offset was committed past them)`,
    );
    // The unusable message is a bad record whatever the format: committed past, the two batches not.
    expect(broker.committed(`g-${topic}`, topic, 0)).toBe(1n);
  });

  it("a damaged first message among good ones is a bad record: skipped, and the offsets committed past it", async () => {
    const topic = "kinds-damaged-first";
    const first = encodeExampleBatch(samples.slice(0, 32)).slice(0, 40);
    await produce(topic, [first, ...[1, 2].map((b) => encodeExampleBatch(samples.slice(b * 32, b * 32 + 32)))]);
    expect(await drain(await open(topic, "examplebatch", "skip"))).toEqual({ samples: 64, error: null });
    expect(broker.committed(`g-${topic}`, topic, 0)).toBe(3n);
  });

  it("a first message of another kind followed by good ones is a bad record too (two must agree)", async () => {
    const topic = "kinds-one-stray";
    await produce(topic, [encodeInstance(samples[0]!), ...samples.slice(1, 33).map(encodeExample)]);
    expect(await drain(await open(topic, "example", "skip"))).toEqual({ samples: 32, error: null });
    expect(broker.committed(`g-${topic}`, topic, 0)).toBe(33n);
    // Under --on-bad-record fail the stray message fails the job, named as a bad record, not as another kind.
    const again = "kinds-one-stray-fail";
    await produce(again, [encodeInstance(samples[0]!), ...samples.slice(1, 33).map(encodeExample)]);
    const { error } = await drain(await open(again, "example", "fail"));
    expect(String(error)).toMatch(/partition 0 offset 0.*not a valid example/);
  });

  it("a refused topic is not fetched again and again: compute stops reading it", async () => {
    const topic = "kinds-stops-fetching";
    // Messages after the two that decide: kafkajs hands them over again while they are not resolved.
    await produce(topic, [0, 1, 2].map((b) => encodeExampleBatch(samples.slice(b * 32, b * 32 + 32))));
    const source = await open(topic, "example", "skip");
    try {
      const error = await source.nextBatch(32, () => false).then(() => null, (e: unknown) => e);
      expect(ComputeErrors.is(error, "COMPUTE_ERR_BAD_CONFIG"), String(error)).toBe(true);
      const before = broker.fetches;
      await new Promise((r) => setTimeout(r, 1000));
      // kafkajs refetches unresolved messages at once unless the topic is paused (thousands a second).
      expect(broker.fetches - before).toBeLessThan(20);
    } finally {
      await source.close();
    }
  });

  it("a held first message fetched again after a rebalance is held once: a stray message among good ones stays a bad record", async () => {
    const topic = "kinds-rebalance";
    await produce(topic, [encodeInstance(samples[0]!)]);
    const source = await KafkaSource.open({
      brokers: [broker.address], topic, groupId: `g-${topic}`, message: "example", featureList, onBadRecord: "skip", maxQueued: 1000, idleTimeoutMs: 6000,
      log: createLogger("kafka-kinds", "silent"),
    });
    const waitFor = async (ok: () => boolean) => {
      for (let t = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 50))) if (Date.now() - t > 10_000) throw new Error("timed out");
    };
    await waitFor(() => source.stats().consumed === 1);
    // Another member joins the group (two jobs sharing the default group): the group rebalances, and the uncommitted
    // held message is fetched again.
    const other = kafka.consumer({ groupId: `g-${topic}` });
    await other.connect();
    await other.subscribe({ topic: "kinds-rebalance-other", fromBeginning: true });
    await other.run({ eachMessage: async () => {} });
    await new Promise((r) => setTimeout(r, 1500));
    await produce(topic, samples.slice(1, 33).map(encodeExample));
    const result = await drain(source);
    await other.disconnect();
    expect(result).toEqual({ samples: 32, error: null });
    expect(broker.committed(`g-${topic}`, topic, 0)).toBe(33n);
  });
});

