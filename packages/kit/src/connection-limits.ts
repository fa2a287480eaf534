import type { Server, Socket } from "node:net";

/**
 * What one server accepts at once. Every connection holds a file
 * descriptor, and a client that opens TLS connections and never finishes
 * the handshake keeps each one for the handshake's 120 s: a trial ran a
 * serving process out of descriptors that way (EMFILE: it could then not
 * even read its model directory). The total stays well below the process's
 * descriptors; one address may hold a share of it (generous, since a proxy
 * or a node of many clients is one address).
 */
export const MAX_CONNECTIONS = 8192;
export const MAX_CONNECTIONS_PER_ADDRESS = 1024;

/**
 * How long an HTTP request may take to arrive whole, headers and body. Node
 * drops a client slow with its headers after 60 s, but fastify turns the
 * whole-request limit off: a client trickling one body byte every few
 * seconds held its connection for good, and 8 addresses' worth of them
 * (8 x 1,024) kept every other client out.
 */
export const HTTP_REQUEST_TIMEOUT_MS = 60_000;

/** Applies the limits to a listening (or about to listen) server; returns a count of connections refused so far. */
export function limitConnections(server: Server, total = MAX_CONNECTIONS, perAddress = MAX_CONNECTIONS_PER_ADDRESS): () => number {
  server.maxConnections = total;
  const open = new Map<string, number>();
  let refused = 0;
  server.prependListener("connection", (socket: Socket) => {
    const from = socket.remoteAddress ?? "";
    const n = (open.get(from) ?? 0) + 1;
    if (n > perAddress) {
      refused++;
      socket.destroy();
      return;
    }
    open.set(from, n);
    socket.once("close", () => {
      const left = (open.get(from) ?? 1) - 1;
      if (left > 0) open.set(from, left);
      else open.delete(from);
    });
  });
  return () => refused;
}
