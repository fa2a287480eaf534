import { Kafka, logLevel } from "kafkajs";
import { z } from "zod";
import { nonNegativeInt, parseConfig, positiveInt, runMain, usageText, type FlagTable } from "@pangea/kit";
import { SyntheticSource } from "./sources/synthetic.js";
import { ComputeErrors } from "./errors.js";
import { encodeExample, encodeInstance } from "@pangea/monolith";

const FLAGS: FlagTable = {
  brokers: { description: "Kafka at host:port[,host:port...]" },
  topic: { description: "topic to produce to (created if missing)" },
  records: { description: "synthetic records to produce", default: "10000" },
  seed: { description: "seed of the synthetic data", default: "42" },
  start: { description: "index of the first synthetic record", default: "0" },
  format: { description: "instance or example: one record per message value", default: "instance" },
  partitions: { description: "partitions of a topic this tool creates", default: "2" },
};

const schema = z.object({
  brokers: z.string({ message: "expected host:port[,...]" }).transform((v) => v.split(",").map((b) => b.trim()).filter(Boolean)),
  topic: z.string({ message: "expected a topic name" }).min(1),
  records: positiveInt("a positive record count").default(10_000),
  seed: nonNegativeInt("a non-negative integer seed").default(42),
  start: nonNegativeInt("a record index").default(0),
  format: z.enum(["instance", "example"], { message: "expected instance or example" }).default("instance"),
  partitions: positiveInt("a positive partition count").default(2),
});

const usage = () => usageText("pangea kafka-produce", "Produce the synthetic data set to a Kafka topic as Monolith Instance or Example messages.", FLAGS);

runMain("pangea kafka-produce", async () => {
  const c = parseConfig(schema, FLAGS, process.argv.slice(2), {});
  if (!c) {
    process.stdout.write(usage());
    return;
  }
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";
  const kafka = new Kafka({ clientId: "pangea-kafka-produce", brokers: c.brokers, logLevel: logLevel.NOTHING, retry: { retries: 3 } });
  const source = new SyntheticSource({ seed: c.seed, evalRecords: 0 });
  const encode = c.format === "instance" ? encodeInstance : encodeExample;
  const admin = kafka.admin();
  const producer = kafka.producer();
  try {
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: c.topic, numPartitions: c.partitions }] });
    await producer.connect();
    for (let i = 0; i < c.records; i += 1000) {
      const n = Math.min(1000, c.records - i);
      const messages = Array.from({ length: n }, (_, k) => ({ value: Buffer.from(encode(source.plainSample("train", c.start + i + k))) }));
      await producer.send({ topic: c.topic, messages });
    }
  } catch (err) {
    throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot produce to topic ${c.topic} at ${c.brokers.join(",")}: ${(err as Error).message}`);
  } finally {
    await producer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
  }
  process.stdout.write(`produced ${c.records} ${c.format} messages to ${c.topic}\n`);
}, usage);
