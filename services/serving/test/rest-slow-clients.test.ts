import { mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import type { FastifyInstance } from "@pangea/observe";
import { ModelManager } from "../src/model/model-manager.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { startRest } from "../src/api/rest.js";
import { writeVersion } from "./support/versions.js";

const base = mkdtempSync(join(tmpdir(), "pangea-slow-"));
const models = new ModelManager("ctr", base, 1, createLogger("serving-test", "silent"));
let rest: { app: FastifyInstance; address: string };

beforeAll(async () => {
  writeVersion(base, 1);
  models.scan();
  // The limit at 1 s here (60 s in service); Node checks its connections every 30 s.
  rest = await startRest("127.0.0.1", 0, models, new MicroBatcher(0, 64), 64, undefined, {}, 1_000);
});
afterAll(() => rest.app.close());

it("a client trickling its body a byte at a time is answered 408 and dropped; other clients are served meanwhile", async () => {
  const [host, port] = [rest.address.split(":")[0]!, Number(rest.address.split(":")[1])];
  const socket = connect(port, host);
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  socket.write(`POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
  // One byte every 200 ms: never idle long, never done.
  const trickle = setInterval(() => socket.writable && socket.write(" "), 200);
  let answer = "";
  socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
  socket.on("error", () => {});
  const started = performance.now();
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const other = await fetch(`http://${rest.address}/v1/models/ctr`);
  expect(other.status).toBe(200);
  // Idle keep-alive connections stay as long as fastify keeps them (72 s), not Node's 5 s: a client reusing one
  // the server had just closed failed with ECONNRESET.
  expect(other.headers.get("keep-alive")).toBe("timeout=72");
  await closed;
  clearInterval(trickle);
  expect(answer.split("\r\n")[0]).toBe("HTTP/1.1 408 Request Timeout");
  // Within Node's 30 s check interval of the limit passing, not held for good.
  expect(performance.now() - started).toBeLessThan(40_000);
}, 60_000);
