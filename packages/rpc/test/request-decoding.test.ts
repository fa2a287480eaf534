import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../src/index.js";

/** A service whose requests are JSON: its deserializer throws on bytes that are not, as protobuf's does on a malformed message. */
const json = (path: string, responseStream: boolean): grpc.MethodDefinition<unknown, unknown> => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  requestDeserialize: (b: Buffer) => JSON.parse(b.toString("utf8")) as unknown,
  responseSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  responseDeserialize: (b: Buffer) => JSON.parse(b.toString("utf8")) as unknown,
});
const service: grpc.ServiceDefinition = { Echo: json("/test.Json/Echo", false), Watch: json("/test.Json/Watch", true), Guarded: json("/test.Json/Guarded", false) };

let running: RunningServer;
let client: grpc.Client;
const TOKEN = "a-token-of-some-length";

beforeAll(async () => {
  running = await startServer("127.0.0.1", 0, (s) => {
    s.addService(service, {
      Echo: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, call.request),
      Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        call.write(call.request);
        call.end();
      },
      Guarded: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, call.request),
    });
  }, ["test.Json"], undefined, { security: null, clientToken: TOKEN, policy: { "/test.Json/Echo": "public", "/test.Json/Watch": "public", "/test.Json/Guarded": "client" } });
  client = new grpc.Client(running.address, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client.close();
  await running.shutdown(100);
});

const raw = (b: Buffer) => b;
function unary(path: string, bytes: Buffer, meta = new grpc.Metadata()): Promise<{ code: number; details: string; value?: Buffer }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, raw, raw, bytes, meta, (err, value) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "", value }));
  });
}
function streamed(path: string, bytes: Buffer): Promise<{ code: number; details: string; messages: Buffer[] }> {
  return new Promise((resolve) => {
    const messages: Buffer[] = [];
    const call = client.makeServerStreamRequest(path, raw, raw, bytes);
    call.on("data", (m: Buffer) => messages.push(m));
    call.on("error", (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details, messages }));
    call.on("end", () => resolve({ code: 0, details: "", messages }));
  });
}

describe("a request that does not decode", () => {
  it("is INVALID_ARGUMENT naming the method (grpc-js alone answers INTERNAL), unary and server-streaming; a good one is served", async () => {
    const bad = await unary("/test.Json/Echo", Buffer.from("\x08\x96\x01 not json"));
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.details).toMatch(/^\/test\.Json\/Echo: the request is not a valid message of this method \(.+\)$/);
    const good = await unary("/test.Json/Echo", Buffer.from('{"a":1}'));
    expect(good).toMatchObject({ code: 0 });
    expect(good.value!.toString()).toBe('{"a":1}');
    const badStream = await streamed("/test.Json/Watch", Buffer.from("{"));
    expect(badStream.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(badStream.details).toMatch(/^\/test\.Json\/Watch: the request is not a valid message of this method/);
    expect((await streamed("/test.Json/Watch", Buffer.from("[1]"))).messages.map(String)).toEqual(["[1]"]);
  });

  it("from a caller the call policy refuses is refused as such first: the caller learns nothing of the method's format", async () => {
    const anonymous = await unary("/test.Json/Guarded", Buffer.from("{"));
    expect(anonymous.code).toBe(grpc.status.UNAUTHENTICATED);
    const meta = new grpc.Metadata();
    meta.set("authorization", `Bearer ${TOKEN}`);
    expect((await unary("/test.Json/Guarded", Buffer.from("{"), meta)).code).toBe(grpc.status.INVALID_ARGUMENT);
  });
});
