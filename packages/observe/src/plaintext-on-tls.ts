import type { Socket } from "node:net";
import type { Server as HttpsServer } from "node:https";

/** A TLS connection opens with a handshake record (content type 22). */
const TLS_HANDSHAKE = 0x16;
/** How long a connection may stay silent before its first byte tells which it is. */
const FIRST_BYTE_MS = 10_000;
/** How long a plain client has to take the 400 before its connection is closed outright. */
const ANSWERED_CLOSE_MS = 2_000;

/**
 * Makes an HTTPS server answer a plain HTTP request with a 400 that says to
 * use https://, instead of closing the connection unanswered (curl: "Empty
 * reply from server", a browser: a blank failure). The first byte of each
 * connection decides: a TLS handshake goes on to the server's own TLS
 * listener (the byte is put back, and Node's TLS socket reads what the
 * socket holds); anything else is not TLS.
 */
export function answerPlaintextOnTls(server: HttpsServer): void {
  const tlsListeners = server.listeners("connection") as ((socket: Socket) => void)[];
  server.removeAllListeners("connection");
  server.on("connection", (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), FIRST_BYTE_MS);
    const onError = (): void => clearTimeout(timer);
    socket.once("error", onError);
    const sniff = (): void => {
      const first = socket.read(1) as Buffer | null;
      if (first === null) return void socket.once("readable", sniff);
      clearTimeout(timer);
      socket.removeListener("error", onError);
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE) {
        for (const l of tlsListeners) l.call(server, socket);
        return;
      }
      const body = "This port speaks HTTPS (TLS): use https:// with the cluster's CA certificate.\n";
      socket.on("error", () => {});
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      // What the client still sends is dropped, and its connection closed soon whether or not it closes its side: a
      // client that never does would otherwise hold it (and, by the thousand, the server's connection limit).
      socket.resume();
      setTimeout(() => socket.destroy(), ANSWERED_CLOSE_MS).unref();
    };
    socket.once("readable", sniff);
  });
}
