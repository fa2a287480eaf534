import * as grpc from "@grpc/grpc-js";
import { closedPort } from "@pangea/test-utils";
import { describe, expect, it } from "vitest";
import { SYNC_MAX_RECONNECT_BACKOFF_MS, parameterSyncClient } from "../src/hot-path.js";

/** Resolves with the ms until the channel is READY (asking it to connect), polling every 50 ms. */
async function msUntilReady(client: grpc.Client, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (client.getChannel().getConnectivityState(true) === grpc.connectivityState.READY) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  return Number.POSITIVE_INFINITY;
}

describe("parameter sync's channel to a serving replica", () => {
  it("reconnects within its bounded backoff to a replica back after 17 s away (gRPC's own backoff had grown past 8 s by then)", async () => {
    const port = await closedPort();
    const client = parameterSyncClient(`127.0.0.1:${port}`, null);
    const server = new grpc.Server();
    try {
      // Nothing listens: the channel fails and backs off, as toward a replica killed with -9.
      expect(await msUntilReady(client, 17_000)).toBe(Number.POSITIVE_INFINITY);
      await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
      const waited = await msUntilReady(client, 15_000);
      // The bound, its jitter (20%), and a connection's setup on a loaded machine.
      expect(waited).toBeLessThan(SYNC_MAX_RECONNECT_BACKOFF_MS * 1.2 + 1_000);
    } finally {
      client.close();
      server.forceShutdown();
    }
  }, 45_000);
});
