import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import type { FastifyInstance } from "@pangea/observe";
import { ModelManager } from "../src/model/model-manager.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { startRest } from "../src/api/rest.js";
import { writeVersion } from "./support/versions.js";

/** A REST body without JSON's content type is refused saying which header is expected. */
const base = mkdtempSync(join(tmpdir(), "pangea-ctype-"));
const models = new ModelManager("ctr", base, 1, createLogger("serving-test", "silent"));
let rest: { app: FastifyInstance; address: string };

beforeAll(async () => {
  writeVersion(base, 1);
  models.scan();
  rest = await startRest("127.0.0.1", 0, models, new MicroBatcher(0, 64), 64);
});
afterAll(() => rest.app.close());

const body = JSON.stringify({ instances: [{ dense_features: [1, 2], feature_ids: ["65537"] }] });

describe("REST Predict's content type", () => {
  it("none at all: 415 naming the header to send", async () => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", body: new Blob([body]) });
    expect(res.status).toBe(415);
    expect(await res.json()).toEqual({ error: "SERVING_ERR_BAD_INPUT: expected a JSON body with the header Content-Type: application/json; the request has no Content-Type header" });
  });

  it("another one: 415 naming what was sent", async () => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", body, headers: { "content-type": "application/x-protobuf" } });
    expect(res.status).toBe(415);
    expect(await res.json()).toEqual({ error: "SERVING_ERR_BAD_INPUT: expected a JSON body with the header Content-Type: application/json; got application/x-protobuf" });
  });

  it("application/json predicts", async () => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", body, headers: { "content-type": "application/json" } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { predictions: number[] }).predictions).toHaveLength(1);
  });
});
