import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { TLS_SERVER_NAME } from "./cluster-certs.js";

/**
 * Whether an HTTP/1 server (a REST, dashboard or metrics port) answers at
 * host:port: for the hint when a gRPC call there failed because the user
 * gave the wrong port. Over TLS, the server's handshake picks no HTTP/2 (gRPC
 * needs it); in plaintext, it answers a request with an HTTP/1 status line.
 * False when nothing answers within `timeoutMs`, or a gRPC server does.
 */
export function answersHttp1(address: string, tls: boolean, timeoutMs = 1_000): Promise<boolean> {
  const at = address.lastIndexOf(":");
  const host = address.slice(0, at).replace(/^\[|\]$/g, "");
  const port = Number(address.slice(at + 1));
  return new Promise((resolve) => {
    let done = false;
    let socket: Socket;
    const finish = (http1: boolean) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(http1);
    };
    if (tls) {
      // The certificate is not checked: the question is only which protocol the server speaks.
      const s = tlsConnect({ host, port, servername: TLS_SERVER_NAME, ALPNProtocols: ["h2", "http/1.1"], rejectUnauthorized: false });
      s.once("secureConnect", () => finish(s.alpnProtocol !== "h2"));
      socket = s;
    } else {
      socket = tcpConnect({ host, port }, () => socket.write(`HEAD / HTTP/1.1\r\nHost: ${address}\r\nConnection: close\r\n\r\n`));
      socket.once("data", (d: Buffer) => finish(d.subarray(0, 7).toString("latin1") === "HTTP/1."));
      socket.once("end", () => finish(false));
    }
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once("error", () => finish(false));
  });
}
