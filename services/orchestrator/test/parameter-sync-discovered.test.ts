import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "@pangea/kit";
import { ParameterSyncService } from "@pangea/rpc";
import { MessageType, decodeMessage, encodeMessage, readIdWords } from "@pangea/schema";
import { EmbeddingStore, type SlotConfig } from "../src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../src/job/job.js";
import { ParameterSyncPusher } from "../src/sync/parameter-sync.js";

const base: SlotConfig = defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.05 }, 4);
const ROWS = 300;

/** A replica as serving acks: one load for its life; a real gRPC server recording the rows each update carried. */
async function replica(): Promise<{ address: string; rowsPerUpdate: number[]; server: grpc.Server }> {
  const rowsPerUpdate: number[] = [];
  const server = new grpc.Server();
  server.addService(ParameterSyncService, {
    push: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const { payload: u } = decodeMessage(call.request, MessageType.PARAMETER_SYNC_UPDATE, "push");
      rowsPerUpdate.push(readIdWords(u.ids, "ids").count);
      cb(null, encodeMessage(MessageType.PARAMETER_SYNC_ACK, "serving", (a) => {
        a.modelVersion = 1n;
        a.rowsApplied = BigInt(rowsPerUpdate.at(-1)!);
        a.loadId = "load-1";
      }));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, rowsPerUpdate, server };
}

function recordingLog(lines: string[]): Logger {
  const say = (level: string) => (_o: unknown, msg?: string) => lines.push(`${level}: ${msg ?? _o}`);
  return { info: say("info"), debug: () => {}, warn: say("warn") } as unknown as Logger;
}

describe("ParameterSyncPusher with the replicas listed before each push (--serving-sync discovery)", () => {
  let stop: (() => void)[] = [];
  afterEach(() => {
    for (const s of stop) s();
    stop = [];
  });

  it("sends a replica that appears every row, then what changes; keeps the replicas it had while the list cannot be read, saying so once; pushes no more to one that left", async () => {
    const [a, b] = [await replica(), await replica()];
    const store = new EmbeddingStore(base, new Map(), 1);
    const out = new Float32Array(4);
    for (let h = 1; h <= ROWS; h++) store.read(h, (3 << 16) >>> 0, false, out, 0, 4);
    let listed: string[] | Error = [a.address];
    const lines: string[] = [];
    const pusher = new ParameterSyncPusher([], { store, dense: null, step: () => 1 }, 1_000, 1_000, "orchestrator", "", recordingLog(lines), undefined, Date.now, async () => {
      if (listed instanceof Error) throw listed;
      return listed;
    });
    stop.push(() => pusher.stop(), () => a.server.forceShutdown(), () => b.server.forceShutdown());
    const touch = (h: number) => store.assign(Uint32Array.of(h, (3 << 16) >>> 0), 1, Float32Array.of(h, 0, 0, 0), 4);

    await pusher.push(false);
    expect([a.rowsPerUpdate, b.rowsPerUpdate]).toEqual([[ROWS], []]);
    listed = [a.address, b.address];
    touch(1);
    await pusher.push(false);
    // a gets the changed row; b, new, the whole table (the changed row in it).
    expect([a.rowsPerUpdate, b.rowsPerUpdate]).toEqual([[ROWS, 1], [ROWS]]);
    listed = new Error("etcd at 127.0.0.1:2379 is unreachable");
    for (const h of [2, 3]) {
      touch(h);
      await pusher.push(false);
    }
    expect([a.rowsPerUpdate.slice(2), b.rowsPerUpdate.slice(1)]).toEqual([[1, 1], [1, 1]]);
    expect(lines.filter((l) => l.includes("cannot read the serving replicas"))).toEqual(["warn: parameter sync cannot read the serving replicas from etcd; pushing to the ones it had"]);
    listed = [b.address];
    touch(4);
    await pusher.push(true);
    expect([a.rowsPerUpdate.slice(4), b.rowsPerUpdate.slice(3)]).toEqual([[], [1]]);
    expect(lines.filter((l) => l.startsWith("info:"))).toEqual([
      "info: serving replica found in etcd: parameter sync sends it every row and the dense weights, then what changes",
      "info: parameter sync sent serving every row again",
      "info: serving replica found in etcd: parameter sync sends it every row and the dense weights, then what changes",
      "info: parameter sync sent serving every row again",
      "info: parameter sync reads the serving replicas from etcd again",
      "info: serving replica left etcd: parameter sync stops pushing to it",
    ]);
  });
});
