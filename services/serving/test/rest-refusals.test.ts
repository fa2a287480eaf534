import { mkdtempSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import type { FastifyInstance } from "@pangea/observe";
import { ModelManager } from "../src/model/model-manager.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { startRest } from "../src/api/rest.js";
import { SPEC, writeVersion } from "./support/versions.js";

/**
 * REST requests the client got wrong: 0 examples is a 400 (INVALID_ARGUMENT), not an internal error;
 * a body without JSON's content type is refused saying which header is expected.
 */
const base = mkdtempSync(join(tmpdir(), "pangea-empty-"));
const models = new ModelManager("ctr", base, 1, createLogger("serving-test", "silent"));
let rest: { app: FastifyInstance; address: string };

beforeAll(async () => {
  writeVersion(base, 1);
  models.scan();
  rest = await startRest("127.0.0.1", 0, models, new MicroBatcher(0, 64), 64);
});
afterAll(() => rest.app.close());

const predict = async (body: unknown) => {
  const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as { error?: string; predictions?: number[] } };
};

describe("Negative feature ids over REST", () => {
  it("are read by their 64 bits, as gRPC reads a DT_INT64 id (the metadata's type): the same answer as the unsigned id", async () => {
    const as = async (id: unknown) => predict({ instances: [{ dense_features: [1, 2], feature_ids: [id] }] });
    const unsigned = await as("18446744073709551615");
    expect(unsigned.status).toBe(200);
    for (const id of [-1, "-1"]) expect(await as(id)).toEqual(unsigned);
    expect((await as("-9223372036854775809")).json.error).toBe('SERVING_ERR_BAD_INPUT: feature_ids row 0 slot #0: feature id "-9223372036854775809" is not a 64-bit integer (-2^63 .. 2^64 - 1; send ids at or beyond ±2^53 as strings)');
  });
});

describe("Predict with no examples", () => {
  it.each([
    // Said as sent (it named dense_features, which the request never gave).
    ["instances: []", { instances: [] }, 'SERVING_ERR_BAD_INPUT: "instances" is empty: a request needs at least one example'],
    ["columnar inputs of 0 rows", { inputs: { dense_features: [], feature_ids: [] } }, `SERVING_ERR_BAD_INPUT: input dense_features has shape [0, ${SPEC.numDense}]: a request needs at least one example`],
  ])("%s is refused with 400 SERVING_ERR_BAD_INPUT", async (_what, body, error) => {
    const r = await predict(body);
    expect(r.status).toBe(400);
    expect(r.json.error).toBe(error);
  });

  it("one example still predicts", async () => {
    const r = await predict({ instances: [{ dense_features: [1, 2], feature_ids: ["65537"] }] });
    expect(r.status).toBe(200);
    expect(r.json.predictions).toHaveLength(1);
  });
});

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

  it("curl -d's application/x-www-form-urlencoded is read as JSON, as TF Serving's REST examples send it; a form's key=value text is refused as JSON", async () => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", body, headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { predictions: number[] }).predictions).toHaveLength(1);
    const form = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", body: "a=1&b=2", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(form.status).toBe(400);
    expect(((await form.json()) as { error: string }).error).toMatch(/^SERVING_ERR_BAD_INPUT: /);
  });

  it("application/json predicts", async () => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", body, headers: { "content-type": "application/json" } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { predictions: number[] }).predictions).toHaveLength(1);
  });
});

describe("REST Predict's body, as strict as gRPC's", () => {
  it("text/plain is 415 like every type but JSON", async () => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", body, headers: { "content-type": "text/plain" } });
    expect(res.status).toBe(415);
    expect(await res.json()).toEqual({ error: "SERVING_ERR_BAD_INPUT: expected a JSON body with the header Content-Type: application/json; got text/plain" });
  });

  it.each([
    ["an unknown key in a row", { instances: [{ dense_features: [1, 2], feature_ids: ["65537"], C1: "abc" }] }, 'SERVING_ERR_BAD_INPUT: unknown inputs "C1" in "instances"; expected dense_features and feature_ids'],
    ["both inputs and instances", { inputs: { dense_features: [[1, 2]], feature_ids: [["65537"]] }, instances: [{ dense_features: [1, 2], feature_ids: ["65537"] }] }, 'SERVING_ERR_BAD_INPUT: the body has both "inputs" and "instances"; give one of them'],
    ["another signature", { signature_name: "nope", instances: [{ dense_features: [1, 2], feature_ids: ["65537"] }] }, 'SERVING_ERR_BAD_INPUT: unknown signature "nope"; the model has serving_default'],
    ["a dense value given as a string", { instances: [{ dense_features: [1, "13"], feature_ids: ["65537"] }] }, 'SERVING_ERR_BAD_INPUT: dense_features row 0 value 1 must be a number, got the string "13"'],
    ["ragged ids for fewer examples than dense rows", { inputs: { dense_features: [[1, 2], [3, 4]], feature_ids: [[["65537", "65538"]]] } }, "SERVING_ERR_BAD_INPUT: inputs disagree on the batch size: dense_features has 2, feature_ids has 1"],
    ["a dense value beyond a 32-bit float's range", { instances: [{ dense_features: [1, 1e308], feature_ids: ["65537"] }] }, "SERVING_ERR_BAD_INPUT: input dense_features: the value at flat index 1 is not a finite 32-bit float (Infinity; values beyond ±3.4e38 become Infinity)"],
    ["a dense value of null", { inputs: { dense_features: [[null, 2]], feature_ids: [["65537"]] } }, "SERVING_ERR_BAD_INPUT: dense_features row 0 value 0 must be a number, got null"],
  ])("%s: 400 naming it", async (_what, b, error) => {
    const r = await predict(b);
    expect(r.status).toBe(400);
    expect(r.json.error).toBe(error);
  });

  it("signature_name serving_default still predicts", async () => {
    const r = await predict({ signature_name: "serving_default", instances: [{ dense_features: [1, 2], feature_ids: ["65537"] }] });
    expect(r.status).toBe(200);
  });
});

describe("REST Predict's error lines stay one short line, whatever the value", () => {
  // Written by hand: a value nested this deep is what a hostile client sends, and JSON.stringify of it overflowed the stack (a 500).
  const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
  const raw = async (text: string) => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: text });
    return { status: res.status, error: ((await res.json()) as { error?: string }).error };
  };

  it.each([
    ["a cell's list holding a list nested 25 deep", `{"instances":[{"dense_features":[1,2],"feature_ids":[[${deep(25)}]]}]}`, "SERVING_ERR_BAD_INPUT: feature_ids row 0 slot #0: a list inside the cell's list of ids; a cell is one id or one list of ids"],
    ["a signature_name nested 30 deep", `{"signature_name":${deep(30)},"instances":[{"dense_features":[1,2],"feature_ids":["65537"]}]}`, "SERVING_ERR_BAD_INPUT: unknown signature a list; the model has serving_default"],
    // Deeper than a request may nest: refused before it is parsed.
    ["a cell's list holding a list nested 5,000 deep", `{"instances":[{"dense_features":[1,2],"feature_ids":[[${deep(5000)}]]}]}`, 'SERVING_ERR_BAD_INPUT: the body nests arrays and objects more than 32 deep; a predict body nests five at most ({"inputs": {"feature_ids": [[[ids]]]}})'],
    ["a feature id of 100,000 characters", `{"instances":[{"dense_features":[1,2],"feature_ids":["${"x".repeat(100_000)}"]}]}`, `SERVING_ERR_BAD_INPUT: feature_ids row 0 slot #0: feature id "${"x".repeat(64)}… (${100_000 - 64} more chars)" is not a 64-bit integer (-2^63 .. 2^64 - 1; send ids at or beyond ±2^53 as strings)`],
  ])("%s: 400, one line", async (_what, text, error) => {
    const r = await raw(text);
    expect(r.status).toBe(400);
    expect(r.error).toBe(error);
  });
});

describe("REST Predict's body that is not UTF-8", () => {
  const send = async (bytes: Uint8Array, headers: Record<string, string> = {}) => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: bytes });
    return { status: res.status, json: (await res.json()) as { error?: string } };
  };
  const notUtf8 = Buffer.concat([Buffer.from('{"instances": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);

  // Fastify's string parsing counted the decoded text's bytes against Content-Length and said the sizes differed.
  it("400 saying so, plain or gzipped", async () => {
    const error = "SERVING_ERR_BAD_INPUT: the body is not UTF-8 text; JSON must be sent as UTF-8";
    expect(await send(notUtf8)).toEqual({ status: 400, json: { error } });
    expect(await send(gzipSync(notUtf8), { "content-encoding": "gzip" })).toEqual({ status: 400, json: { error } });
  });

  it("UTF-8 beyond ASCII in a body still parses (and reaches the model's checks)", async () => {
    const r = await send(Buffer.from(JSON.stringify({ instances: [{ dense_features: [1, 2], feature_ids: ["Zürich"] }] })));
    expect(r.status).toBe(400);
    expect(r.json.error).toBe('SERVING_ERR_BAD_INPUT: feature_ids row 0 slot #0: feature id "Zürich" is not a 64-bit integer (-2^63 .. 2^64 - 1; send ids at or beyond ±2^53 as strings)');
  });
});

describe("REST Predict: input names a client sent are cut in the error line", () => {
  it("a name of 100,000 characters with a newline, and 200 extra names: the first five, each cut, and how many more", async () => {
    const long = `a\n${"x".repeat(100_000)}`;
    const row: Record<string, unknown> = { dense_features: [1, 2], feature_ids: ["65537"], [long]: 1 };
    for (let i = 0; i < 200; i++) row[`k${i}`] = 1;
    const r = await predict({ instances: [row] });
    expect(r.status).toBe(400);
    expect(r.json.error).toBe(`SERVING_ERR_BAD_INPUT: unknown inputs "a\\n${"x".repeat(38)}… (${100_002 - 40} more chars)", "k0", "k1", "k2", "k3" and 196 more in "instances"; expected dense_features and feature_ids`);
  });
});

describe("A model name the server does not serve", () => {
  it("is echoed cut short, not whole (a 10,000-character name came back in full)", async () => {
    const res = await fetch(`http://${rest.address}/v1/models/${"m".repeat(10_000)}:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe(`SERVING_ERR_UNKNOWN_MODEL: no model named "${"m".repeat(64)}… (9936 more chars)"; this server serves "ctr"`);
  });
});

describe("Pinning a version", () => {
  it.each([
    [{ version: 1e308 }, "1e+308"],
    [{ version: 1.5 }, "1.5"],
    [{ version: "1" }, '"1"'],
    [{}, "nothing"],
  ])("%j is refused naming what it needs and what came", async (body, shown) => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr:pin`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe(`SERVING_ERR_BAD_INPUT: pin needs {"version": <a loaded version, a whole number>} or {"version": null} (serve the newest); got ${shown}`);
  });

  it("a form body is refused (415) and pins nothing: any web page can send one to a server without asking", async () => {
    const marked = async () => ((await (await fetch(`http://${rest.address}/v1/models/ctr`)).json()) as { model_version_status: { version: string; pinned?: boolean }[] }).model_version_status.filter((v) => v.pinned);
    for (const type of ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]) {
      const res = await fetch(`http://${rest.address}/v1/models/ctr:pin`, { method: "POST", headers: { "content-type": type, origin: "http://elsewhere.example" }, body: '{"version":1}' });
      expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([415, `SERVING_ERR_BAD_INPUT: a pin takes a JSON body with the header Content-Type: application/json (a form body is what any web page can send); got ${type}`]);
    }
    expect(await marked()).toEqual([]);
  });

  it("a version in the path is refused naming the form that pins it (the path's version was ignored)", async () => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr/versions/7:pin`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"version":1}' });
    expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([400, 'SERVING_ERR_BAD_INPUT: POST /v1/models/ctr/versions/7:pin: a pin names its version in the body, not the path: POST /v1/models/ctr:pin {"version": 7}']);
  });

  it("a pinned version is marked in the model's status until unpinned", async () => {
    const pin = (version: number | null) => fetch(`http://${rest.address}/v1/models/ctr:pin`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ version }) });
    const marked = async () => ((await (await fetch(`http://${rest.address}/v1/models/ctr`)).json()) as { model_version_status: { version: string; pinned?: boolean }[] }).model_version_status.filter((v) => v.pinned).map((v) => v.version);
    expect(await marked()).toEqual([]);
    expect((await pin(1)).status).toBe(200);
    expect(await marked()).toEqual(["1"]);
    expect((await pin(null)).status).toBe(200);
    expect(await marked()).toEqual([]);
  });
});

describe("REST Predict's inputs, refused saying what is missing or how many were sent", () => {
  it.each([
    ["an instance without feature_ids", { instances: [{ dense_features: [1, 2], feature_ids: ["1"] }, { dense_features: [1, 2] }] }, "instance 1 has no feature_ids; every instance needs dense_features and feature_ids"],
    ["an instance with neither input", { instances: [{ dense_features: [1, 2], feature_ids: ["1"] }, {}] }, "instance 1 has no dense_features and no feature_ids; every instance needs dense_features and feature_ids"],
    ["columnar inputs without dense_features", { inputs: { feature_ids: [["1"]] } }, '"inputs" has no dense_features; expected dense_features and feature_ids'],
    ["a row of the wrong width", { instances: [{ dense_features: [1, 2, 3], feature_ids: ["1"] }] }, `dense_features row 0 must have ${SPEC.numDense} values, got 3`],
    ["a row that is not a list", { inputs: { dense_features: [7], feature_ids: [["1"]] } }, `dense_features row 0 must have ${SPEC.numDense} values, got a number`],
  ])("%s: 400 naming it", async (_what, body, message) => {
    const r = await predict(body);
    expect(r.status).toBe(400);
    expect(r.json.error).toBe(`SERVING_ERR_BAD_INPUT: ${message}`);
  });

  it.each([
    ["PUT", "/v1/models/ctr:predict", "POST", "predict takes POST with a JSON body"],
    ["DELETE", "/v1/models/ctr:pin", "POST", "pin takes POST with a JSON body"],
    ["PATCH", "/v1/models/ctr/versions/1:predict", "POST", "predict takes POST with a JSON body"],
    ["OPTIONS", "/v1/models/ctr:predict", "POST", "predict takes POST with a JSON body"],
    ["DELETE", "/v1/models/ctr", "GET", "the model's status and metadata take GET; predict with POST /v1/models/<name>[/versions/<v>]:predict"],
    ["PUT", "/v1/models/ctr/metadata", "GET", "the model's status and metadata take GET; predict with POST /v1/models/<name>[/versions/<v>]:predict"],
  ])("%s %s is 405 with Allow: %s, not 404", async (method, path, allow, why) => {
    const res = await fetch(`http://${rest.address}${path}`, { method, headers: { "content-type": "application/json" }, ...(method === "OPTIONS" ? {} : { body: "{}" }) });
    expect([res.status, res.headers.get("allow"), ((await res.json()) as { error: string }).error]).toEqual([405, allow, `${method} ${path}: ${why}`]);
  });

  it("a name the server does not serve is 404 whatever the method, as its GET is (a POST of ctr%3Apredict was told to use GET)", async () => {
    for (const [method, path] of [["GET", "/v1/models/ctr%3Apredict"], ["POST", "/v1/models/ctr%3Apredict"], ["DELETE", "/v1/models/ctr%3Apredict"], ["POST", "/v1/models/other/metadata"], ["POST", "/v1/models/other/versions/7:pin"], ["PUT", "/v1/models/other:predict"]]) {
      const res = await fetch(`http://${rest.address}${path}`, { method, ...(method === "GET" ? {} : { headers: { "content-type": "application/json" }, body: "{}" }) });
      const name = path.split("/")[3]!.replace(/:.*/, "");
      expect([method, path, res.status, ((await res.json()) as { error: string }).error]).toEqual([method, path, 404, `SERVING_ERR_UNKNOWN_MODEL: no model named "${name}"; this server serves "ctr"`]);
    }
  });

  it("a wrong method is 405 before the body is read: a body that is no JSON, or of another type, does not change the answer", async () => {
    for (const [type, body] of [["application/json", "{"], ["text/plain", "x"], ["application/json", '{"a":1,"a":2}']]) {
      const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "PUT", headers: { "content-type": type! }, body });
      expect([res.status, res.headers.get("allow")]).toEqual([405, "POST"]);
    }
  });

  it("more instances than --max-batch are 413 before their contents are looked at (65 empty objects were 'name no inputs')", async () => {
    const r = await predict({ instances: Array.from({ length: 65 }, () => ({})) });
    expect([r.status, r.json.error]).toEqual([413, "SERVING_ERR_TOO_LARGE: request carries 65 examples; this server takes at most 64 (--max-batch)"]);
  });

  it("a GET of :predict is 405 with Allow: POST, not 404", async () => {
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`);
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
    expect(await res.json()).toEqual({ error: "GET /v1/models/ctr:predict: predict takes POST with a JSON body" });
    expect((await fetch(`http://${rest.address}/v1/models/ctr/nothing`)).status).toBe(404);
  });
});
