import { connect } from "node:net";

/** host and port of "host:port" or "[v6]:port". */
export function hostAndPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(":");
  return { host: address.slice(0, at).replace(/^\[|\]$/g, ""), port: Number(address.slice(at + 1)) };
}

/**
 * Whether a plaintext HTTP/1 server (a REST, dashboard or metrics port)
 * answers at host:port: it answers a request with an HTTP/1 status line.
 * False when nothing answers within `timeoutMs`, or a gRPC server does.
 * (Behind TLS, the handshake's protocol tells: see diagnoseConnection.)
 */
export function answersHttp1(address: string, timeoutMs = 1_000): Promise<boolean> {
  const { host, port } = hostAndPort(address);
  return new Promise((resolve) => {
    let done = false;
    const finish = (http1: boolean) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(http1);
    };
    const socket = connect({ host, port }, () => socket.write(`HEAD / HTTP/1.1\r\nHost: ${address}\r\nConnection: close\r\n\r\n`));
    socket.once("data", (d: Buffer) => finish(d.subarray(0, 7).toString("latin1") === "HTTP/1."));
    socket.once("end", () => finish(false));
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once("error", () => finish(false));
  });
}
