import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "@pangea/kit";
import { EmbeddingStore, type SlotConfig } from "../src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../src/job/job.js";
import { syncPeer } from "./support/sync-peer.js";
import { MAX_DISCOVERED_REPLICAS, ParameterSyncPusher } from "../src/sync/parameter-sync.js";
import * as grpc from "@grpc/grpc-js";
import { ParameterSyncService } from "@pangea/rpc";

const base: SlotConfig = defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.05 }, 4);
const ROWS = 300;

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
    const [a, b] = [await syncPeer(() => "load-1"), await syncPeer(() => "load-1")];
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
    // A replica that has answered nothing is asked with an empty update, then sent the whole table.
    expect([a.rowsPerUpdate, b.rowsPerUpdate]).toEqual([[0, ROWS], []]);
    listed = [a.address, b.address];
    touch(1);
    await pusher.push(false);
    // a gets the changed row; b, new, the whole table (the changed row in it).
    expect([a.rowsPerUpdate, b.rowsPerUpdate]).toEqual([[0, ROWS, 1], [0, ROWS]]);
    listed = new Error("etcd at 127.0.0.1:2379 is unreachable");
    for (const h of [2, 3]) {
      touch(h);
      await pusher.push(false);
    }
    expect([a.rowsPerUpdate.slice(3), b.rowsPerUpdate.slice(2)]).toEqual([[1, 1], [1, 1]]);
    expect(lines.filter((l) => l.includes("cannot read the serving replicas"))).toEqual(["warn: parameter sync cannot read the serving replicas from etcd; pushing to the ones it had"]);
    listed = [b.address];
    touch(4);
    await pusher.push(true);
    expect([a.rowsPerUpdate.slice(5), b.rowsPerUpdate.slice(4)]).toEqual([[], [1]]);
    expect(lines.filter((l) => l.startsWith("info:"))).toEqual([
      "info: serving replica found in etcd: parameter sync sends it every row this shard holds, then what changes",
      "info: parameter sync sent serving every row",
      "info: serving replica found in etcd: parameter sync sends it every row this shard holds, then what changes",
      "info: parameter sync sent serving every row",
      "info: parameter sync reads the serving replicas from etcd again",
      "info: serving replica left etcd: parameter sync stops pushing to it",
    ]);
  });

  it("passes over entries that are no host:port (an empty value crashed the orchestrator), said once each, and pushes to at most MAX_DISCOVERED_REPLICAS", async () => {
    const store = new EmbeddingStore(base, new Map(), 1);
    const lines: string[] = [];
    // Closed ports: every push fails at once, as to entries nobody serves at.
    const many = Array.from({ length: MAX_DISCOVERED_REPLICAS + 10 }, (_, i) => `127.0.0.1:${i + 1}`);
    const pusher = new ParameterSyncPusher([], { store, dense: null, step: () => 1 }, 1_000, 1_000, "orchestrator", "", recordingLog(lines), undefined, Date.now, async () => ["", "not an address", "", ...many]);
    stop.push(() => pusher.stop());
    store.assign(Uint32Array.of(1, (3 << 16) >>> 0), 1, Float32Array.of(1, 0, 0, 0), 4);
    await pusher.push(false);
    await pusher.push(false);
    expect(lines.filter((l) => l.includes("is no host:port"))).toHaveLength(2);
    expect(lines.filter((l) => l.includes(`etcd lists more serving replicas than parameter sync pushes to (${MAX_DISCOVERED_REPLICAS})`))).toHaveLength(1);
    expect(lines.filter((l) => l.includes("serving replica found in etcd"))).toHaveLength(MAX_DISCOVERED_REPLICAS);
  });

  it("a replica that never answers holds up no other: while its send is out, the rounds go to the others and wait in its backlog", async () => {
    const good = await syncPeer(() => "load-1");
    const silent = new grpc.Server();
    let asked = 0;
    silent.addService(ParameterSyncService, { push: () => void asked++ });
    const port = await new Promise<number>((resolve, reject) => silent.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const store = new EmbeddingStore(base, new Map(), 1);
    const lines: string[] = [];
    const pusher = new ParameterSyncPusher([`127.0.0.1:${port}`, good.address], { store, dense: null, step: () => 1 }, 1_000, 1_000, "orchestrator", "", recordingLog(lines));
    stop.push(() => pusher.stop(), () => good.server.forceShutdown(), () => silent.forceShutdown());
    const touch = (h: number) => store.assign(Uint32Array.of(h, (3 << 16) >>> 0), 1, Float32Array.of(h, 0, 0, 0), 4);
    touch(1);
    const first = pusher.push(false);
    const t0 = Date.now();
    while (good.rowsPerUpdate.length === 0 && Date.now() - t0 < 3_000) await new Promise((r) => setTimeout(r, 10));
    for (const h of [2, 3, 4]) {
      touch(h);
      await pusher.push(false);
    }
    // Rounds made while good's own send was out joined its backlog: the next pushes take them.
    const sum = () => good.rowsPerUpdate.reduce((a, b) => a + b, 0);
    while (sum() < 4 && Date.now() - t0 < 3_000) {
      await pusher.push(false);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(sum()).toBe(4);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(asked).toBe(1);
    void first;
  });

  it("a listed peer that refuses every update is asked with an empty one each push, never sent the table or a backlog; once it answers it gets the whole table", async () => {
    let refusing = true;
    const peer = await syncPeer(() => "load-1", () => refusing);
    const rows = peer.rowsPerUpdate;
    const store = new EmbeddingStore(base, new Map(), 1);
    const out = new Float32Array(4);
    for (let h = 1; h <= ROWS; h++) store.read(h, (3 << 16) >>> 0, false, out, 0, 4);
    const lines: string[] = [];
    const pusher = new ParameterSyncPusher([], { store, dense: null, step: () => 1 }, 1_000, 1_000, "orchestrator", "", recordingLog(lines), undefined, Date.now, async () => [peer.address]);
    stop.push(() => pusher.stop(), () => peer.server.forceShutdown());
    for (let h = 1; h <= 3; h++) {
      store.assign(Uint32Array.of(h, (3 << 16) >>> 0), 1, Float32Array.of(h, 0, 0, 0), 4);
      await pusher.push(false);
    }
    expect(rows).toEqual([0, 0, 0]);
    refusing = false;
    store.assign(Uint32Array.of(4, (3 << 16) >>> 0), 1, Float32Array.of(4, 0, 0, 0), 4);
    await pusher.push(false);
    expect(rows).toEqual([0, 0, 0, 0, ROWS]);
    expect(lines.filter((l) => l.includes("push failed"))).toHaveLength(1);
  });

  it("a replica found again at its address (its lease lost and announced again) goes on with the run's sequence, so serving applies what it is sent", async () => {
    const peer = await syncPeer(() => "load-1");
    const store = new EmbeddingStore(base, new Map(), 1);
    let listed = [peer.address];
    const pusher = new ParameterSyncPusher([], { store, dense: null, step: () => 1 }, 1_000, 1_000, "orchestrator", "", recordingLog([]), undefined, Date.now, async () => listed);
    stop.push(() => pusher.stop(), () => peer.server.forceShutdown());
    for (const [h, now] of [[1, [peer.address]], [2, []], [3, [peer.address]], [4, [peer.address]]] as [number, string[]][]) {
      listed = now;
      store.assign(Uint32Array.of(h, (3 << 16) >>> 0), 1, Float32Array.of(h, 0, 0, 0), 4);
      await pusher.push(false);
    }
    // Probe and table, nothing while away, probe and table again, then the change: one sequence on from the other.
    expect(peer.sequences).toEqual(peer.sequences.map((_, i) => i + 1));
    expect(peer.sequences.length).toBe(5);
  });

  it("more entries than MAX_DISCOVERED_REPLICAS, sorting before a replica that answers, do not push it out", async () => {
    const real = await syncPeer(() => "load-1");
    const store = new EmbeddingStore(base, new Map(), 1);
    let listed = [real.address];
    const lines: string[] = [];
    const pusher = new ParameterSyncPusher([], { store, dense: null, step: () => 1 }, 1_000, 1_000, "orchestrator", "", recordingLog(lines), undefined, Date.now, async () => listed);
    stop.push(() => pusher.stop(), () => real.server.forceShutdown());
    store.assign(Uint32Array.of(1, (3 << 16) >>> 0), 1, Float32Array.of(1, 0, 0, 0), 4);
    await pusher.push(false);
    const before = real.rowsPerUpdate.length;
    // "127.0.0.1:1..." sorts before the real one's port.
    listed = [...Array.from({ length: MAX_DISCOVERED_REPLICAS + 36 }, (_, i) => `127.0.0.1:${i + 1}`), real.address];
    for (const h of [2, 3]) {
      store.assign(Uint32Array.of(h, (3 << 16) >>> 0), 1, Float32Array.of(h, 0, 0, 0), 4);
      await pusher.push(false);
    }
    expect(real.rowsPerUpdate.slice(before)).toEqual([1, 1]);
    expect(lines.filter((l) => l.includes("left etcd"))).toEqual([]);
    expect(lines.filter((l) => l.includes("serving replica found in etcd"))).toHaveLength(MAX_DISCOVERED_REPLICAS);
  });
});
