import { connect, createServer, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { MAX_CONNECTIONS_PER_ADDRESS, limitConnections } from "@pangea/kit";
import { startServer } from "../src/index.js";

/**
 * Opens `n` TCP connections to host:port, 200 at a time: a burst beyond the
 * server's listen backlog (511) looks connected to the client while the
 * server's kernel drops the handshake's last packet, and such a connection
 * reaches the server only seconds later. Resolves once each is open or
 * refused, with how many the server closed.
 */
async function open(host: string, port: number, n: number): Promise<{ sockets: Socket[]; closed: () => number }> {
  const sockets: Socket[] = [];
  let closed = 0;
  for (let from = 0; from < n; from += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, n - from) }, () =>
        new Promise<void>((resolve) => {
          const s = connect(port, host, () => resolve());
          s.on("error", () => resolve());
          s.on("close", () => closed++);
          sockets.push(s);
        }),
      ),
    );
    await new Promise((r) => setTimeout(r, 200));
  }
  return { sockets, closed: () => closed };
}

const settle = () => new Promise((r) => setTimeout(r, 300));

/** Waits until `count()` reaches `n` (the server handles a burst of connections at its own pace on a loaded machine), then a little longer. */
async function reaches(count: () => number, n: number): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (count() < n && Date.now() < deadline) await settle();
  await settle();
  return count();
}

describe("connection limits (a client holding connections open cannot use up the process's descriptors)", () => {
  it("refuses connections beyond the per-address share, and takes new ones as old ones close", async () => {
    const server = createServer(() => {});
    const refused = limitConnections(server, 100, 3);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const first = await open("127.0.0.1", port, 5);
      expect(await reaches(first.closed, 2)).toBe(2);
      expect(refused()).toBe(2);
      first.sockets.forEach((s) => s.destroy());
      await settle();
      const again = await open("127.0.0.1", port, 3);
      await settle();
      expect(again.closed()).toBe(0);
      again.sockets.forEach((s) => s.destroy());
    } finally {
      server.close();
    }
  });

  it("a gRPC server takes MAX_CONNECTIONS_PER_ADDRESS connections from one address, and no more", async () => {
    const running = await startServer("127.0.0.1", 0, () => {}, [], undefined, { security: null });
    try {
      const held = await open("127.0.0.1", running.port, MAX_CONNECTIONS_PER_ADDRESS + 5);
      expect(await reaches(held.closed, 5)).toBe(5);
      held.sockets.forEach((s) => s.destroy());
    } finally {
      await running.shutdown(100);
    }
  }, 60_000);
});
