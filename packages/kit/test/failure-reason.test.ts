import { describe, expect, it } from "vitest";
import { reasonKey } from "../src/failure-reason.js";

describe("reasonKey", () => {
  it("is one key for one failure whatever its numbers, and for a gRPC deadline whatever breakdown grpc-js adds", () => {
    // grpc-js 1.14's wording of three calls to one silent peer in a row: the first carries the name resolution.
    const first = "serving at 127.0.0.1:4100: DEADLINE_EXCEEDED: Deadline exceeded after 12.003s,name resolution: 0.013s,metadata filters: 0.001s,Waiting for LB pick";
    const later = "serving at 127.0.0.1:4100: DEADLINE_EXCEEDED: Deadline exceeded after 12.001s,Waiting for LB pick";
    expect(reasonKey(first)).toBe(reasonKey(later));
    expect(reasonKey(later)).toBe("serving at #.#:#: DEADLINE_EXCEEDED: Deadline exceeded after #s");
    // Text after the breakdown's end (a "; "-joined list of reasons) is kept.
    expect(reasonKey(`${first}; and shard 1: refused`)).toBe(`${reasonKey(later)}; and shard #: refused`);
    // Other failures differ by their words, not their numbers.
    expect(reasonKey("etcd at 127.0.0.1:2379: HTTP 503 on /v3/lease/keepalive")).toBe(reasonKey("etcd at 127.0.0.1:2379: HTTP 502 on /v3/lease/keepalive"));
    expect(reasonKey("No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1")).not.toBe(reasonKey(later));
  });
});
