import * as http2 from "node:http2";

/**
 * A unary gRPC caller on Node's own HTTP/2 client: one POST per call with
 * the 5-byte length-prefixed message, status from the trailers (the gRPC
 * over HTTP/2 protocol). The load generator uses it because grpc-js's client
 * spends about as much CPU per call as the server under test, on the same
 * two cores; the server sees ordinary gRPC calls either way.
 */
export class H2UnaryClient {
  private readonly session: http2.ClientHttp2Session;
  private readonly frames = new WeakMap<Buffer, Buffer>();

  /** With `ca`, the connection is TLS and the server's certificate must be that CA's (serving under --tls-dir). */
  constructor(address: string, ca?: Buffer) {
    // Room for thousands of calls in flight (open loop against a stalled server): at Node's default 10 MB, the
    // session refuses new streams (NGHTTP2_ENHANCE_YOUR_CALM) and fails every call in flight, the generator's error.
    const options = { maxSessionMemory: 1024 };
    this.session = ca ? http2.connect(`https://${address}`, { ...options, ca, ALPNProtocols: ["h2"] }) : http2.connect(`http://${address}`, options);
    this.session.on("error", () => {}); // surfaced per call, through the stream's error
  }

  call(path: string, message: Buffer, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const stream = this.session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-timeout": `${timeoutMs}m`,
      });
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let detail = "";
      const takeStatus = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] !== undefined) {
          status = String(h["grpc-status"]);
          detail = decodeURIComponent(String(h["grpc-message"] ?? ""));
        }
      };
      stream.on("response", takeStatus); // a trailers-only answer carries the status in its headers
      stream.on("trailers", takeStatus);
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", reject);
      stream.on("close", () => {
        if (status === undefined) return reject(new Error(`${path}: the stream closed without a gRPC status (HTTP/2 code ${stream.rstCode})`));
        if (status !== "0") return reject(new Error(`${path}: gRPC status ${status}: ${detail}`));
        const body = Buffer.concat(chunks);
        const length = body.length >= 5 ? body.readUInt32BE(1) : -1;
        if (length !== body.length - 5 || body[0] !== 0) return reject(new Error(`${path}: expected one uncompressed message, got ${body.length} bytes`));
        resolve(body.subarray(5));
      });
      stream.end(this.framed(message));
    });
  }

  /** The message behind gRPC's 5-byte length prefix, made once per message (the load generator sends one over and over). */
  private framed(message: Buffer): Buffer {
    let f = this.frames.get(message);
    if (!f) {
      f = Buffer.alloc(5 + message.length);
      f.writeUInt32BE(message.length, 1);
      message.copy(f, 5);
      this.frames.set(message, f);
    }
    return f;
  }

  close(): void {
    this.session.close();
  }
}
