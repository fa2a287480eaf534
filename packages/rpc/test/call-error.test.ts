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

describe("toServiceError", () => {
  it("an error of ours (no PangeaError) is INTERNAL to the caller and logged with its stack, at most 5 at once, then counted", async () => {
    const { reportInternalErrors, toServiceError } = await import("../src/index.js");
    const { PangeaError } = await import("@pangea/kit");
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = { error: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }) };
    reportInternalErrors(log as never);
    expect(toServiceError(new Error("CAPNP-TS023 Cannot convert"))).toEqual({ code: grpc.status.INTERNAL, details: "internal error: CAPNP-TS023 Cannot convert" });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.msg).toBe("a call was answered INTERNAL (an error of ours, not the caller's)");
    expect(String(lines[0]!.obj.err)).toMatch(/^Error: CAPNP-TS023 Cannot convert\n\s+at /);
    // A caller's mistake is not ours: not logged here.
    const mine = new PangeaError("X_ERR_BAD", { status: "INVALID_ARGUMENT", exit: 2, description: "a test's" }, "bad input");
    expect(toServiceError(mine).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(lines).toHaveLength(1);
    // A bug we detected ourselves (a PangeaError of status INTERNAL) is logged too.
    const bug = new PangeaError("X_ERR_INTERNAL", { status: "INTERNAL", exit: 1, description: "a test's" }, "row 7 of a table that has 3");
    expect(toServiceError(bug)).toEqual({ code: grpc.status.INTERNAL, details: "X_ERR_INTERNAL: row 7 of a table that has 3" });
    expect(lines).toHaveLength(2);
    for (let i = 0; i < 20; i++) toServiceError(new Error(`again ${i}`));
    expect(lines).toHaveLength(5);
    // A second later one more is logged, with the count of those that were not.
    await new Promise((r) => setTimeout(r, 1_100));
    toServiceError(new Error("after"));
    expect([lines.length, lines.at(-1)!.obj.notLoggedBefore]).toEqual([6, 17]);
  });
});
