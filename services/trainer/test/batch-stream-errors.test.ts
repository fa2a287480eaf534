import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatchStreamService, startServer } from "@pangea/rpc";
import { MessageType, decodeMessage } from "@pangea/schema";
import { BatchReader } from "../src/cluster/batches.js";
import { BatchFeed } from "../src/cluster/batch-feed.js";
import { TrainerErrors } from "../src/errors.js";

/**
 * A compute that refuses every batch request as soon as it arrives: the
 * error reaches the trainer before it reads, while it is busy elsewhere (an
 * evaluator pulls the dense parameters between opening the stream and its
 * first read). It must become the read's error, never an unhandled 'error'
 * event that ends the process.
 */
const REFUSAL = "COMPUTE_ERR_BAD_REQUEST: batch request: refused for the test";
let server: Awaited<ReturnType<typeof startServer>>;

/** A compute whose every batch stream fails with this status as soon as its request arrives. */
function failingCompute(code: grpc.status, details: string): ReturnType<typeof startServer> {
  return startServer("127.0.0.1", 0, (s) => {
    s.addService(BatchStreamService, {
      streamBatches: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.once("data", () => call.emit("error", { code, details }));
      },
    });
  }, []);
}

beforeAll(async () => {
  server = await failingCompute(grpc.status.INVALID_ARGUMENT, REFUSAL);
});

afterAll(async () => {
  await server.shutdown(500);
});

/** These computes check no tokens. */
const UNREGISTERED = { rank: 0, token: "" };

const settle = () => new Promise((r) => setTimeout(r, 300));

async function lostPeer(read: Promise<unknown>): Promise<Error> {
  const err = (await read.then(() => null, (e: unknown) => e)) as Error;
  expect(TrainerErrors.is(err, "TRAINER_ERR_LOST_PEER")).toBe(true);
  return err;
}

describe("a batch stream that fails before the trainer reads from it", () => {
  it("BatchReader (evaluation): the next read fails with TRAINER_ERR_LOST_PEER naming compute's reason", async () => {
    const reader = new BatchReader(server.address, "trainer-0", UNREGISTERED);
    await reader.open({ workerRank: 0, worldSize: 1, batchSize: 8, maxBatches: 0, split: "eval" }, 5_000);
    await settle();
    const err = await lostPeer(reader.next());
    expect(err.message).toBe(`batch stream from compute at ${server.address}: INVALID_ARGUMENT: ${REFUSAL}`);
    reader.close();
  });

  it("BatchFeed (training): the next read fails with TRAINER_ERR_LOST_PEER naming compute's reason", async () => {
    const feed = new BatchFeed("trainer-0", 8, 5_000, UNREGISTERED);
    await feed.connect(server.address);
    await settle();
    feed.want([0]);
    const err = await lostPeer(feed.next(0));
    expect(err.message).toBe(`batch stream from compute at ${server.address}: INVALID_ARGUMENT: ${REFUSAL}`);
    feed.reset();
  });
});

/**
 * A compute that sends every batch wanted except batch 5, which never comes:
 * a trainer that read batch 5 ahead, then dropped that stream (its work
 * changed) and opened another, still has that read waiting when the old
 * stream ends.
 */
describe("a read left waiting on a batch stream the trainer dropped", () => {
  let compute: Awaited<ReturnType<typeof startServer>>;

  beforeAll(async () => {
    compute = await startServer("127.0.0.1", 0, (s) => {
      s.addService(BatchStreamService, {
        streamBatches: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          let request = true;
          call.on("data", (bytes: Buffer) => {
            if (request) return void (request = false);
            const { payload: ack } = decodeMessage(bytes, MessageType.BATCH_ACK, "trainer");
            for (let i = 0; i < ack.want.length; i++) {
              const j = Number(ack.want.get(i));
              if (j !== 5) call.write(Buffer.from(`batch ${j}`));
            }
          });
          call.on("error", () => {});
        },
      });
    }, []);
  });

  afterAll(async () => {
    await compute.shutdown(500);
  });

  it("fails with TRAINER_ERR_LOST_PEER and leaves the new stream alone", async () => {
    const feed = new BatchFeed("trainer-0", 8, 5_000, UNREGISTERED);
    await feed.connect(compute.address);
    feed.want([5]);
    // Handled from the start, as the trainer's read-ahead is: it fails while the feed reconnects.
    const ahead = feed.next(5).then(() => null, (e: unknown) => e as Error);
    await settle();
    feed.reset();
    await feed.connect(compute.address);
    feed.want([7]);
    expect(TrainerErrors.is(await ahead, "TRAINER_ERR_LOST_PEER")).toBe(true);
    expect(feed.connectedTo(compute.address)).toBe(true);
    expect((await feed.next(7)).toString()).toBe("batch 7");
    feed.reset();
  });
});

/**
 * A compute whose records cannot be read (its record cache damaged on disk)
 * answers DATA_LOSS: asking again cannot mend that, so the trainer fails
 * with compute's words instead of retrying the same batches.
 */
describe("a batch stream that fails with DATA_LOSS", () => {
  const DAMAGE = "COMPUTE_ERR_CACHE_CORRUPT: record cache /data/.pangea-cache/x.records chunk 3 at byte 786432 (262160 bytes) fails its checksum";
  let compute: Awaited<ReturnType<typeof startServer>>;

  beforeAll(async () => {
    compute = await failingCompute(grpc.status.DATA_LOSS, DAMAGE);
  });

  afterAll(async () => {
    await compute.shutdown(500);
  });

  it("BatchFeed (training) and BatchReader (evaluation): TRAINER_ERR_BAD_DATA naming compute's reason, not a lost peer", async () => {
    const feed = new BatchFeed("trainer-0", 8, 5_000, UNREGISTERED);
    await feed.connect(compute.address);
    feed.want([0]);
    const err = (await feed.next(0).then(() => null, (e: unknown) => e)) as Error;
    feed.reset();
    expect(TrainerErrors.is(err, "TRAINER_ERR_BAD_DATA"), String(err)).toBe(true);
    expect(err.message).toBe(`batch stream from compute at ${compute.address}: DATA_LOSS: ${DAMAGE}`);
    const reader = new BatchReader(compute.address, "trainer-0", UNREGISTERED);
    await reader.open({ workerRank: 0, worldSize: 1, batchSize: 8, maxBatches: 0, split: "eval" }, 5_000);
    const evalErr = (await reader.next().then(() => null, (e: unknown) => e)) as Error;
    reader.close();
    expect(TrainerErrors.is(evalErr, "TRAINER_ERR_BAD_DATA"), String(evalErr)).toBe(true);
  });
});
