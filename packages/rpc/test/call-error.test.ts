import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { describeCallError, parameterSyncClient, unary } from "../src/index.js";

describe("describeCallError", () => {
  it("a connection refused is one line naming the peer, without grpc-js's empty trailing 'Resolution note: '", async () => {
    const client = parameterSyncClient("127.0.0.1:1");
    let err: unknown;
    try {
      await unary<Buffer, Buffer>("serving", client.push.bind(client), Buffer.alloc(0), 5_000);
    } catch (e) {
      err = e;
    } finally {
      client.close();
    }
    expect((err as grpc.ServiceError).details).toMatch(/Resolution note: ?$/);
    const text = describeCallError(err, "serving at 127.0.0.1:1");
    expect(text).toMatch(/^serving at 127\.0\.0\.1:1: UNAVAILABLE: .*ECONNREFUSED 127\.0\.0\.1:1\.$/);
    expect(text).not.toContain("\n");
  });
});
