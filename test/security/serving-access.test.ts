import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHANNEL_OPTIONS, channelCredentials, loadTransportSecurity, parameterSyncClient, unary, writeClusterCerts, type TransportSecurity } from "@pangea/rpc";
import { DataType, MessageType, encodeMessage, writeTensor } from "@pangea/schema";
import { tfServingServices } from "../../services/serving/src/api/tf-serving-grpc.js";
import { SPEC, idWords, writeVersion } from "../../services/serving/test/support/versions.js";
import { ROOT, runNode } from "../support/processes.js";
import { startService, type RunningService } from "../support/service.js";

/**
 * Serving under TLS with an API token, as a real process: parameter sync
 * only from the parameter servers' roles, predictions only with the token
 * (or an admin certificate), REST over HTTPS with the same rule, /metrics
 * open; the ParameterSync attack (NaN weights from anyone) cannot be sent.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-sec-serving-"));
const base = join(tmp, "models");
const tls = join(tmp, "tls");
const tokenFile = join(tmp, "token");
const TOKEN = "0123456789abcdef0123456789abcdef";
const SERVING = join(ROOT, "services/serving/dist/main.js");
let serving: RunningService;
const as = (name: string): TransportSecurity => loadTransportSecurity(tls, name);

beforeAll(async () => {
  writeVersion(base, 1);
  writeClusterCerts(tls);
  writeFileSync(tokenFile, `${TOKEN}\n`);
  serving = await startService(SERVING, ["--model-base-path", base, "--model-name", "ctr", "--port", "0", "--rest-port", "0", "--tls-dir", tls, "--api-token-file", tokenFile]);
});
afterAll(async () => {
  await serving?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function syncUpdate(value: number): Buffer {
  return encodeMessage(MessageType.PARAMETER_SYNC_UPDATE, "attacker", (m) => {
    m.sequence = 1n;
    m.step = 1n;
    writeTensor(m._initIds(), "ids", DataType.UINT64, [1], Uint32Array.from(idWords(0)));
    writeTensor(m._initRows(), "rows", DataType.FLOAT32, [1, SPEC.embeddingDim], new Float32Array(SPEC.embeddingDim).fill(value));
    writeTensor(m._initTombstones(), "tombstones", DataType.UINT64, [0], new Uint32Array(0));
    m._initDense(0);
  });
}

async function sync(security: TransportSecurity | null, value: number): Promise<{ code: number; details: string }> {
  const c = security ? parameterSyncClient(serving.address, security) : null;
  const anonymous = security ? null : new (grpc.makeGenericClientConstructor({}, "x"))(serving.address, grpc.credentials.createSsl(readFileSync(join(tls, "ca.crt"))), CHANNEL_OPTIONS);
  try {
    if (c) return await unary<Buffer, Buffer>("serving", c.push.bind(c), syncUpdate(value), 5_000).then(() => ({ code: 0, details: "" }), (e: grpc.ServiceError) => ({ code: e.code, details: e.details }));
    return await new Promise((resolve) =>
      anonymous!.makeUnaryRequest("/pangea.v1.ParameterSync/Push", (b: Buffer) => b, (b: Buffer) => b, syncUpdate(value), (e) => resolve(e ? { code: e.code, details: e.details } : { code: 0, details: "" })),
    );
  } finally {
    c?.close();
    anonymous?.close();
  }
}

function predictRequest(): unknown {
  return {
    model_spec: { name: "ctr" },
    inputs: {
      dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 1 }, { size: SPEC.numDense }] }, float_val: [0.1, 0.2] },
      feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 1 }, { size: SPEC.numSlots }] }, uint64_val: [String(BigInt(idWords(0)[1]) << 32n)] },
    },
  };
}

/** Calls a PredictionService method (Predict by default) and returns its status. */
async function predict(creds: grpc.ChannelCredentials, token?: string, method: "Predict" | "GetModelMetadata" = "Predict"): Promise<{ code: number; details: string }> {
  const { prediction } = tfServingServices();
  const Ctor = grpc.makeGenericClientConstructor(prediction.service, "PredictionService");
  const c = new Ctor(serving.address, creds, CHANNEL_OPTIONS) as unknown as Record<typeof method, (r: unknown, m: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void) => void> & { close(): void };
  const meta = new grpc.Metadata();
  if (token) meta.set("authorization", `Bearer ${token}`);
  const req = method === "Predict" ? predictRequest() : { model_spec: { name: "ctr" }, metadata_field: ["signature_def"] };
  try {
    return await new Promise((resolve) => c[method](req, meta, (e) => resolve(e ? { code: e.code, details: e.details } : { code: 0, details: "" })));
  } finally {
    c.close();
  }
}

function rest(path: string, headers: Record<string, string> = {}, client?: TransportSecurity, at = serving, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const [host, port] = at.rest!.split(":");
    const post = body === undefined ? {} : { method: "POST", headers: { ...headers, "content-type": "application/json" } };
    const req = httpsRequest({ host, port: Number(port), path, ca: readFileSync(join(tls, "ca.crt")), headers, ...post, ...(client ? { cert: client.cert, key: client.key } : {}) }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    // A string is sent as it is (a body that is no JSON); anything else as its JSON.
    req.end(body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body));
  });
}

describe("serving under TLS with an API token", () => {
  it("takes parameter sync from the orchestrator's and shards' certificates only", async () => {
    const fromTrainer = await sync(as("trainer"), Number.NaN);
    expect(fromTrainer.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(fromTrainer.details).toContain("/pangea.v1.ParameterSync/Push is for orchestrator or shard; the caller has a trainer certificate");
    const anonymous = await sync(null, Number.NaN);
    expect(anonymous.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(await sync(as("orchestrator"), 0.5)).toEqual({ code: 0, details: "" });
  });

  it("answers Predict with the token or an admin certificate, and refuses it without", async () => {
    const ca = () => grpc.credentials.createSsl(readFileSync(join(tls, "ca.crt")));
    const none = await predict(ca());
    expect(none.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(none.details).toContain('/tensorflow.serving.PredictionService/Predict needs "authorization: Bearer <token>"');
    const wrong = await predict(ca(), "wrong-token-wrong-token");
    expect(wrong.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(wrong.details).toContain("the authorization metadata does not carry serving's API token");
    expect(await predict(ca(), TOKEN)).toEqual({ code: 0, details: "" });
    expect(await predict(channelCredentials(["serving"], as("admin")))).toEqual({ code: 0, details: "" });
  });

  it("asks for the token on GetModelMetadata as on Predict", async () => {
    const ca = () => grpc.credentials.createSsl(readFileSync(join(tls, "ca.crt")));
    const none = await predict(ca(), undefined, "GetModelMetadata");
    expect(none.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(none.details).toContain('/tensorflow.serving.PredictionService/GetModelMetadata needs "authorization: Bearer <token>"');
    expect(await predict(ca(), TOKEN, "GetModelMetadata")).toEqual({ code: 0, details: "" });
  });

  it("REST is HTTPS and asks for the token on /v1/, not on /metrics", async () => {
    const refused = await rest("/v1/models/ctr");
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).error).toBe("SERVING_ERR_UNAUTHENTICATED: GET /v1/models/ctr needs the header Authorization: Bearer <serving's API token>");
    const ok = await rest("/v1/models/ctr", { authorization: `bearer ${TOKEN}` }); // the scheme in any case, as HTTP's
    expect(ok.status).toBe(200);
    const wrong = await rest("/v1/models/ctr", { authorization: "Bearer not-the-token-not-the-token" });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body).error).toBe("SERVING_ERR_UNAUTHENTICATED: GET /v1/models/ctr: the Authorization header does not carry serving's API token");
    // An admin certificate passes without the token, as over gRPC.
    expect((await rest("/v1/models/ctr", {}, as("admin"))).status).toBe(200);
    expect((await rest("/v1/models/ctr", {}, as("trainer"))).status).toBe(401);
    expect(JSON.parse(ok.body).model_version_status[0].state).toBe("AVAILABLE");
    expect((await rest("/metrics")).status).toBe(200);
    // Plain HTTP to the HTTPS port is answered, with nothing of the model: a 400 that says to use https.
    const plain = await fetch(`http://${serving.rest}/v1/models/ctr`);
    expect([plain.status, await plain.text()]).toEqual([400, "This port speaks HTTPS (TLS): use https:// with the cluster's CA certificate.\n"]);
    // A plain client that never closes its side (nor reads) is closed by serving soon after its 400, not held for good.
    const [restHost, restPort] = serving.rest!.split(":");
    const held = connect({ host: restHost, port: Number(restPort), allowHalfOpen: true });
    const closedMs = await new Promise<number>((resolve) => {
      const t0 = Date.now();
      // It keeps writing: once serving has closed the connection, a write is answered with a reset.
      const writing = setInterval(() => held.write(Buffer.alloc(1024, 0x41)), 200);
      held.on("error", () => {});
      held.on("close", () => {
        clearInterval(writing);
        resolve(Date.now() - t0);
      });
      held.write("G");
      setTimeout(() => {
        clearInterval(writing);
        held.destroy();
        resolve(Number.POSITIVE_INFINITY);
      }, 10_000);
    });
    expect(closedMs).toBeLessThan(6_000);
    // HTTPS on the same port still works after it (each connection is judged by its first byte).
    expect((await rest("/v1/models/ctr", { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
  });

  it("refuses a short token file at start with one line naming it", async () => {
    const short = join(tmp, "short");
    writeFileSync(short, "abc\n");
    const r = await runNode(SERVING, ["--model-base-path", base, "--api-token-file", short, "--port", "0", "--rest-port", "0"], { timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--api-token-file: ${short} holds a token of 3 characters; it must have 16 to 1024`);
  });
});

describe("serving under TLS without an API token", () => {
  let open: RunningService;
  beforeAll(async () => {
    open = await startService(SERVING, ["--model-base-path", base, "--model-name", "ctr", "--port", "0", "--rest-port", "0", "--tls-dir", tls]);
  });
  afterAll(async () => {
    await open?.stop();
  });

  it("answers anyone's REST predictions, but pins a version only for an admin certificate", async () => {
    expect((await rest("/v1/models/ctr", {}, undefined, open)).status).toBe(200);
    const anonymous = await rest("/v1/models/ctr:pin", {}, undefined, open, { version: 1 });
    expect(anonymous.status).toBe(403);
    expect(JSON.parse(anonymous.body).error).toBe("SERVING_ERR_PERMISSION_DENIED: POST /v1/models/ctr:pin changes the version every caller is served: it needs an admin client certificate of the cluster CA (pangea certs writes admin.crt)");
    expect((await rest("/v1/models/ctr:pin", {}, as("trainer"), open, { version: 1 })).status).toBe(403);
    // Refused before its body is read: a body that is no JSON gets the same 403, not a parse error.
    const unread = await rest("/v1/models/ctr:pin", {}, as("trainer"), open, "{");
    expect([unread.status, JSON.parse(unread.body).error]).toEqual([403, JSON.parse(anonymous.body).error]);
    const admin = await rest("/v1/models/ctr:pin", {}, as("admin"), open, { version: 1 });
    expect([admin.status, JSON.parse(admin.body)]).toEqual([200, { pinned: 1, serving: 1 }]);
    expect((await rest("/v1/models/ctr:pin", {}, as("admin"), open, { version: null })).status).toBe(200);
  });
});

describe("serving in plaintext with an API token", () => {
  it("refuses anonymous calls on their metadata, before reading their requests: a flood of large ones costs no memory", async () => {
    const plain = await startService(SERVING, ["--model-base-path", base, "--model-name", "ctr", "--port", "0", "--rest-port", "0", "--api-token-file", tokenFile]);
    const client = new grpc.Client(plain.address, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": 1 << 28 });
    const hwmKb = () => Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${plain.child.pid}/status`, "utf8"))![1]);
    try {
      const before = hwmKb();
      // 400 requests of 1.2 MB on one connection: read whole before a refusal, they held ~480 MB at once (measured 1.9 GB for 1,500).
      const body = Buffer.alloc(1_200_000, 0x41);
      const codes = await Promise.all(
        Array.from({ length: 400 }, () =>
          new Promise<number>((resolve) =>
            client.makeUnaryRequest("/tensorflow.serving.PredictionService/Predict", (b: Buffer) => b, (b: Buffer) => b, body, new grpc.Metadata(), { deadline: Date.now() + 60_000 }, (err) => resolve(err ? err.code : 0)),
          ),
        ),
      );
      expect(new Set(codes)).toEqual(new Set([grpc.status.UNAUTHENTICATED]));
      expect(hwmKb() - before).toBeLessThan(120 * 1024);
    } finally {
      client.close();
      await plain.stop();
    }
  }, 90_000);

  it("asks for the token on ParameterSync Push too: an anonymous push cannot change the model, a push with the token can", async () => {
    const plain = await startService(SERVING, ["--model-base-path", base, "--model-name", "ctr", "--port", "0", "--rest-port", "0", "--api-token-file", tokenFile]);
    const client = parameterSyncClient(plain.address);
    const push = (token: string | null, value: number) =>
      unary<Buffer, Buffer>("serving", (req, meta, opts, cb) => {
        if (token) meta.set("authorization", `Bearer ${token}`);
        return client.push(req, meta, opts, cb);
      }, syncUpdate(value), 5_000).then(() => ({ code: 0, details: "" }), (e: grpc.ServiceError) => ({ code: e.code, details: e.details }));
    try {
      const anonymous = await push(null, Number.NaN);
      expect(anonymous.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(anonymous.details).toContain(`/pangea.v1.ParameterSync/Push needs "authorization: Bearer <token>" metadata with serving's API token (the parameter servers' --serving-sync-token-file)`);
      const wrong = await push("not-the-token-not-the-token", 0.5);
      expect(wrong.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(await push(TOKEN, 0.5)).toEqual({ code: 0, details: "" });
    } finally {
      client.close();
      await plain.stop();
    }
  });

  it("with --sync-token-file a push takes that token, not the API token (a Predict client holding it could rewrite the model); Predict still takes the API token", async () => {
    const syncFile = join(tmp, "sync-token");
    const SYNC = "sync-token-sync-token-sync";
    writeFileSync(syncFile, `${SYNC}\n`);
    const plain = await startService(SERVING, ["--model-base-path", base, "--model-name", "ctr", "--port", "0", "--rest-port", "0", "--api-token-file", tokenFile, "--sync-token-file", syncFile]);
    const client = parameterSyncClient(plain.address);
    const push = (token: string, value: number) =>
      unary<Buffer, Buffer>("serving", (req, meta, opts, cb) => {
        meta.set("authorization", `Bearer ${token}`);
        return client.push(req, meta, opts, cb);
      }, syncUpdate(value), 5_000).then(() => ({ code: 0, details: "" }), (e: grpc.ServiceError) => ({ code: e.code, details: e.details }));
    try {
      expect(await push(TOKEN, 0.5)).toEqual({ code: grpc.status.UNAUTHENTICATED, details: "RPC_ERR_UNAUTHENTICATED: /pangea.v1.ParameterSync/Push: the authorization metadata does not carry serving's sync token (--sync-token-file)" });
      expect(await push(SYNC, 0.5)).toEqual({ code: 0, details: "" });
      const rest = await fetch(`http://${plain.rest}/v1/models/ctr`, { headers: { authorization: `Bearer ${SYNC}` } });
      expect(rest.status).toBe(401);
      expect((await fetch(`http://${plain.rest}/v1/models/ctr`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    } finally {
      client.close();
      await plain.stop();
    }
  });

  it("pangea run --serving-sync pushes with --serving-sync-token-file (without it, the pushes are those the test above refuses)", async () => {
    const job = mkdtempSync(join(tmp, "job-"));
    // Serving gets the job's first checkpoint as its model (exported while the base holds none) and loads it at once.
    const plain = await startService(SERVING, ["--model-base-path", join(job, "models"), "--model-name", "ctr", "--port", "0", "--rest-port", "0", "--poll-seconds", "0.1", "--api-token-file", tokenFile]);
    const run = (extra: string[], name: string) =>
      runNode(join(ROOT, "packages/cli/dist/main.js"), ["run", "--steps", "6", "--batch-size", "64", "--eval-records", "200", "--serving-sync", plain.address, "--sync-interval-seconds", "1", "--checkpoint-every-steps", "1", "--export-dir", join(job, "models"), "--log-dir", join(job, name), "--checkpoint-dir", join(job, `ck-${name}`), ...extra], { timeoutMs: 120_000 });
    try {
      const withToken = await run(["--serving-sync-token-file", tokenFile], "with");
      expect(withToken.code, withToken.stderr).toBe(0);
      expect(withToken.stdout + withToken.stderr).toMatch(/parameter sync +[\d,]+ embedding rows pushed to serving; serving acknowledged version \d+/);
      expect(readFileSync(join(job, "with", "orchestrator.log"), "utf8")).not.toContain("RPC_ERR_UNAUTHENTICATED");
      // Without it every push is refused, and the summary says the rows were sent, none taken, and why.
      const without = await run([], "without");
      expect(without.code, without.stderr).toBe(0);
      const line = (without.stdout + without.stderr).split("\n").find((l) => l.startsWith("  parameter sync"));
      expect(line, without.stdout).toMatch(/^ {2}parameter sync +no push was applied by serving \([\d,]+ embedding rows in them\); the last push failed: .*UNAUTHENTICATED.*serving's API token/);
      // A token file that cannot be read stops the orchestrator at start, naming it.
      const bad = await runNode(join(ROOT, "services/orchestrator/dist/main.js"), ["--port", "0", "--metrics-port", "0", "--serving-sync", plain.address, "--serving-sync-token-file", join(job, "missing")], { timeoutMs: 60_000 });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain(`--serving-sync-token-file: cannot read ${join(job, "missing")} (ENOENT)`);
    } finally {
      await plain.stop();
    }
  }, 300_000);
});
