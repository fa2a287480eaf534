import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { KafkaFixtureBroker } from "@pangea/test-utils";
import { ENTRY, ROOT, runNode } from "../support/processes.js";
import { SyntheticSource } from "../../services/compute/src/sources/synthetic.js";

/**
 * A whole cluster trains from a Kafka topic: the test broker fixture, or a
 * real Kafka when KAFKA_BROKERS is set. Records reach the trainers through
 * compute's consumer group, and the group's committed offsets cover exactly
 * the records trained on.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-kafka-e2e-"));
let fixture: KafkaFixtureBroker | null = null;
let brokers = process.env.KAFKA_BROKERS ?? "";
const topic = `pangea-e2e-${Date.now()}`;
const group = `${topic}-compute`;

beforeAll(async () => {
  if (!brokers) {
    fixture = await KafkaFixtureBroker.start({ defaultPartitions: 2 });
    brokers = fixture.address;
  }
});
afterAll(() => fixture?.stop());

describe(`training from Kafka (${process.env.KAFKA_BROKERS ? "real broker" : "test broker fixture"})`, () => {
  it("2 trainers train on the topic's records; offsets are committed for exactly those", async () => {
    const produced = await runNode(join(ROOT, "services/compute/dist/kafka-produce.js"), ["--brokers", brokers, "--topic", topic, "--records", "6000", "--format", "instance"]);
    expect(produced.code, produced.stderr).toBe(0);
    expect(produced.stdout).toContain(`produced 6000 instance messages to ${topic}`);
    const list = join(tmp, "features.json");
    writeFileSync(list, JSON.stringify(new SyntheticSource({ seed: 42, evalRecords: 0 }).featureListConfig("fid_v1")));
    const steps = 10;
    const batch = 256;
    const r = await runNode(
      ENTRY.cli,
      ["run", "--json", "--trainers", "2", "--steps", String(steps), "--batch-size", String(batch), "--format", "instance", "--feature-list", list,
        "--kafka-brokers", brokers, "--kafka-topic", topic, "--kafka-group", group, "--log-dir", join(tmp, "logs"), "--checkpoint-dir", join(tmp, "ckpt")],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as JobStatus__Output;
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(Number(s.samples)).toBe(steps * 2 * batch);
    expect(s.source!.description).toContain(`Kafka topic ${topic}`);
    expect(Number(s.eval!.records)).toBe(0); // a stream has no held-out split
    expect(s.smoothedLoss).toBeLessThan(s.firstLoss);
    if (fixture) {
      const committed = (fixture.committed(group, topic, 0) ?? 0n) + (fixture.committed(group, topic, 1) ?? 0n);
      expect(committed).toBe(BigInt(steps * 2 * batch));
    }
  });

  it("a topic of Examples read with --format instance: the job fails naming the kind, and no offset is committed", async () => {
    const examples = `${topic}-examples`;
    const produced = await runNode(join(ROOT, "services/compute/dist/kafka-produce.js"), ["--brokers", brokers, "--topic", examples, "--records", "600", "--format", "example"]);
    expect(produced.code, produced.stderr).toBe(0);
    const list = join(tmp, "features-kinds.json");
    writeFileSync(list, JSON.stringify(new SyntheticSource({ seed: 42, evalRecords: 0 }).featureListConfig("fid_v1")));
    const r = await runNode(
      ENTRY.cli,
      ["run", "--steps", "4", "--batch-size", "64", "--format", "instance", "--feature-list", list, "--on-bad-record", "skip",
        "--kafka-brokers", brokers, "--kafka-topic", examples, "--kafka-group", `${examples}-compute`, "--log-dir", join(tmp, "logs-kinds"), "--checkpoint-dir", join(tmp, "ckpt-kinds")],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    expect(r.stdout + r.stderr).toContain(`topic ${examples}: its first messages (`);
    expect(r.stdout + r.stderr).toContain("are not instance records but decode as Monolith example records: read the topic with --format example");
    // The trainers stop at once (asking again cannot help), not after --compute-grace-ms of retries.
    expect(r.stderr).toMatch(/^pangea run: job failed: trainer-\d exited with code 1: pangea-trainer: error TRAINER_ERR_REFUSED: batch stream from compute at [^ ]+: INVALID_ARGUMENT: COMPUTE_ERR_BAD_CONFIG: /m);
    if (fixture) for (const p of [0, 1]) expect(fixture.committed(`${examples}-compute`, examples, p) ?? 0n).toBe(0n);
  }, 150_000);
});
