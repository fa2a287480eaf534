import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from "node:https";
import { HTTP_REQUEST_TIMEOUT_MS } from "@pangea/kit";
import { answerPlaintextOnTls } from "./plaintext-on-tls.js";

/** fastify's default keep-alive timeout. */
const FASTIFY_KEEP_ALIVE_MS = 72_000;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * A fastify `serverFactory` whose Node server drops a request not whole
 * within `requestTimeout` ms (408). fastify's own `requestTimeout` option
 * sets the server's property after construction, which Node 20 does not
 * read (measured: a client trickling its body was held for good); the
 * limit counts only when given to the constructor. Connections are checked
 * every `requestTimeout` ms, at most every 30 s (Node's default).
 */
export function timedServerFactory(tls?: HttpsOptions, requestTimeout = HTTP_REQUEST_TIMEOUT_MS): (handler: Handler) => ReturnType<typeof createHttpServer> {
  const timing = { requestTimeout, connectionsCheckingInterval: Math.min(30_000, requestTimeout) };
  return (handler) => {
    const server = tls ? createHttpsServer({ ...tls, ...timing }, handler) : createHttpServer(timing, handler);
    if (tls) answerPlaintextOnTls(server as ReturnType<typeof createHttpsServer>);
    // What fastify sets on a server it makes itself (a factory's is left as Node makes it, 5 s): a client's idle
    // keep-alive connection closed at 5 s was reused by the client as the server closed it (ECONNRESET).
    server.keepAliveTimeout = FASTIFY_KEEP_ALIVE_MS;
    return server;
  };
}
