import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { CHANNEL_OPTIONS, FLOW_CONTROL_WINDOW, startServer } from "../src/index.js";

const echoLength: grpc.ServiceDefinition = {
  Measure: {
    path: "/test.Window/Measure",
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
    originalName: "measure",
  },
};

describe("the server's HTTP/2 receive window", () => {
  it("is advertised as FLOW_CONTROL_WINDOW to every connection, and multi-megabyte requests arrive whole", async () => {
    const running = await startServer("127.0.0.1", 0, (s) => {
      s.addService(echoLength, { Measure: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(String(call.request.length))) });
    }, ["test.Window"], undefined, { policy: { "/test.Window/Measure": "public" } });
    try {
      expect(running.wideReceiveWindow).toBe(true);
      // A plain HTTP/2 client sees the server's SETTINGS: the defaults first, then the widened window.
      const session = http2.connect(`http://${running.address}`);
      const windows: number[] = [];
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, 2_000);
        session.on("remoteSettings", (s: http2.Settings) => {
          windows.push(s.initialWindowSize!);
          if (s.initialWindowSize === FLOW_CONTROL_WINDOW) (clearTimeout(timer), resolve());
        });
        session.once("error", reject);
      });
      session.close();
      expect(windows.at(-1)).toBe(FLOW_CONTROL_WINDOW);
      const Client = grpc.makeGenericClientConstructor(echoLength, "Window");
      const client = new Client(running.address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as { measure(b: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void): void; close(): void };
      const big = Buffer.alloc(5 * 1024 * 1024, 7);
      const got = await new Promise<Buffer>((resolve, reject) => client.measure(big, (e, r) => (e ? reject(e) : resolve(r!))));
      expect(got.toString()).toBe(String(big.length));
      client.close();
    } finally {
      await running.shutdown();
    }
  });
});
