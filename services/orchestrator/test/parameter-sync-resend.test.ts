import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "@pangea/kit";
import { EmbeddingStore, type SlotConfig } from "../src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../src/job/job.js";
import { syncPeer } from "./support/sync-peer.js";
import { MIN_RESEND_GAP_MS, ParameterSyncPusher } from "../src/sync/parameter-sync.js";

const base: SlotConfig = defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.05 }, 4);
const ROWS = 500;

function quietLog(warnings: string[]): Logger {
  const none = () => {};
  return { info: none, debug: none, warn: (_o: unknown, msg: string) => warnings.push(msg) } as unknown as Logger;
}

describe("ParameterSyncPusher against a peer naming a new load in every ack", () => {
  let stop: (() => void)[] = [];
  afterEach(() => {
    for (const s of stop) s();
    stop = [];
  });

  it(`sends the whole table at most once per ${MIN_RESEND_GAP_MS / 1000} s, the changed rows between, and once more at the final push`, async () => {
    const peer = await syncPeer((n) => `load-${n}`);
    const store = new EmbeddingStore(base, new Map(), 1);
    const out = new Float32Array(4);
    for (let h = 1; h <= ROWS; h++) store.read(h, (3 << 16) >>> 0, false, out, 0, 4);
    let clock = 1_000_000;
    const warnings: string[] = [];
    const pusher = new ParameterSyncPusher([peer.address], { store, dense: null, step: () => 1 }, 1_000, 1_000, "orchestrator", "", quietLog(warnings), undefined, () => clock);
    stop.push(() => pusher.stop(), () => peer.server.forceShutdown());
    const touch = (h: number) => store.assign(Uint32Array.of(h, (3 << 16) >>> 0), 1, Float32Array.of(h, 0, 0, 0), 4);

    await pusher.push(false); // every row, as new; its ack gives the first load
    touch(1);
    await pusher.push(false); // another load named: the whole table again at once
    expect(peer.rowsPerUpdate).toEqual([ROWS, 1, ROWS]);
    for (let i = 0; i < 5; i++) {
      clock += 1_000;
      touch(2 + i);
      await pusher.push(false);
    }
    // Every ack names another load, but within the gap only the changed rows go.
    expect(peer.rowsPerUpdate.slice(3)).toEqual([1, 1, 1, 1, 1]);
    expect(warnings.filter((w) => w.startsWith("serving names another load again")).length).toBe(1);
    clock += MIN_RESEND_GAP_MS;
    await pusher.push(false); // nothing changed, but the deferred whole-table send is due
    expect(peer.rowsPerUpdate.slice(8)).toEqual([ROWS]);
    touch(9);
    // The final push sends it whatever the gap: the last ack named another load, so its round is the whole table, and
    // the ack to that names yet another, which is sent it once more.
    await pusher.push(true);
    expect(peer.rowsPerUpdate.slice(9)).toEqual([ROWS, ROWS]);
  });
});
