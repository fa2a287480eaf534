import { createGunzip, createInflate } from "node:zlib";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import { HTTP_REQUEST_TIMEOUT_MS, PangeaError, limitConnections, listenFailureReason, printable, valueSnippet, walkJson } from "@pangea/kit";
import { addMetricsRoute, timedServerFactory, type Registry } from "@pangea/observe";
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import { bearerMatches, identityOf, noteIfInternal } from "@pangea/rpc";
import { taskColumn } from "@pangea/model";
import { ServingErrors } from "../errors.js";
import type { MicroBatcher } from "../batching/micro-batcher.js";
import type { ModelManager } from "../model/model-manager.js";
import { METADATA_SIGNATURE_DEF, outputsOf, signatureOf } from "./outputs.js";
import { examplesFromJson } from "./json-inputs.js";
import { sourceFields } from "./version-source.js";

const HTTP: Record<string, number> = { UNAUTHENTICATED: 401, PERMISSION_DENIED: 403, INVALID_ARGUMENT: 400, NOT_FOUND: 404, RESOURCE_EXHAUSTED: 413, UNAVAILABLE: 503, DATA_LOSS: 500, FAILED_PRECONDITION: 400 };

function fail(reply: FastifyReply, err: unknown): FastifyReply {
  noteIfInternal(err);
  // Shed load is RESOURCE_EXHAUSTED like a too-large request, but over HTTP it is "try again later", not "too large".
  if (err instanceof PangeaError && err.code === "SERVING_ERR_OVERLOADED") return reply.code(503).header("retry-after", "1").send({ error: `${err.code}: ${err.message}` });
  if (err instanceof PangeaError) return reply.code(HTTP[err.status] ?? 500).send({ error: `${err.code}: ${err.message}` });
  return reply.code(500).send({ error: `internal error: ${(err as Error).message}` });
}

type Json = Record<string, unknown>;

/** A client that presented an admin certificate of the cluster CA (HTTPS only). */
function isAdmin(raw: unknown): boolean {
  const socket = raw as TLSSocket;
  return !!socket.encrypted && socket.authorized && identityOf(socket.getPeerCertificate())?.role === "admin";
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Who may use the REST API: with a token, /v1/ requests need `Authorization: Bearer <token>`; with a certificate, it is HTTPS. */
export interface RestAccess {
  token?: string;
  /** With it (--metrics-token-file), /metrics only for requests carrying it (observe's carriesToken); /v1/ takes the API token alone. */
  metricsToken?: string;
  /** Serving's certificate; clients may present one of the cluster CA (an admin one passes without the token). */
  https?: { cert: Buffer; key: Buffer; ca: Buffer };
}

/** TensorFlow Serving's REST API shapes on fastify: model status, predict, and pinning a version (rollback). */
export async function startRest(
  host: string,
  port: number,
  models: ModelManager,
  batcher: MicroBatcher,
  maxBatch: number,
  registry?: Registry,
  access: RestAccess = {},
  requestTimeout = HTTP_REQUEST_TIMEOUT_MS,
): Promise<{ app: FastifyInstance; address: string }> {
  // Room for the largest request --max-batch allows, as JSON text.
  const bodyLimit = Math.max(1 << 20, maxBatch * 1024);
  // A client certificate is asked for, not required: REST clients outside the cluster use the token.
  // A handshake not finished in 10 s is dropped (Node's default holds it 120 s; see limitConnections).
  const https = access.https ? { ...access.https, requestCert: true, rejectUnauthorized: false, handshakeTimeout: 10_000 } : undefined;
  // The factory makes the HTTPS server when there is a certificate (fastify's https option would make its own, without the limit).
  const app = Fastify({ bodyLimit, serverFactory: timedServerFactory(https, requestTimeout) }) as unknown as FastifyInstance;
  limitConnections(app.server);
  // Only JSON bodies: fastify's own text/plain parser would hand a JSON text sent as text/plain on as a string.
  app.removeContentTypeParser("text/plain");
  // Our own JSON parser: fastify's says only "Body is not valid JSON" whatever is wrong (a syntax error, a __proto__ key).
  app.removeContentTypeParser("application/json");
  // Taken as bytes and decoded here: fastify's string parsing counts the decoded text's bytes against Content-Length, so
  // a body that is not UTF-8 was refused as "Request body size did not match Content-Length".
  // curl -d sends application/x-www-form-urlencoded, and TF Serving's own REST examples are `curl -d '{...}'`: such a
  // body is read as the JSON it is (a form's key=value text is refused as JSON that does not parse).
  // A body's bytes are taken from the in-flight budget once read (decompressed), before they are parsed, until the
  // answer is sent or the connection closes: the response's close is the one event every request ends with.
  const answered = new WeakMap<IncomingMessage, { closed: boolean; release?: () => void }>();
  app.addHook("onRequest", async (req, reply) => {
    const held: { closed: boolean; release?: () => void } = { closed: false };
    answered.set(req.raw, held);
    reply.raw.once("close", () => {
      held.closed = true;
      held.release?.();
    });
  });
  app.addContentTypeParser(["application/json", "application/x-www-form-urlencoded"], { parseAs: "buffer" }, (req, body, done) => {
    try {
      const held = answered.get(req.raw);
      if (held && !held.closed) held.release = batcher.inflight.take((body as Buffer).length);
    } catch (err) {
      done(err as Error, undefined);
      return;
    }
    try {
      let text: string;
      try {
        text = utf8.decode(body as Buffer);
      } catch {
        throw new Error("the body is not UTF-8 text; JSON must be sent as UTF-8");
      }
      done(null, text === "" ? {} : parseRequestJson(text));
    } catch (err) {
      done(Object.assign(new Error((err as Error).message), { statusCode: 400 }), undefined);
    }
  });
  if (registry) addMetricsRoute(app, registry, access.metricsToken);
  // A gzip or deflate body is decompressed, as TF Serving's HTTP server does; the body limit holds for the JSON it holds.
  app.addHook("preParsing", async (req, reply, payload) => {
    const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase();
    if (encoding === "identity") return payload;
    const inflate = encoding === "gzip" ? createGunzip() : encoding === "deflate" ? createInflate() : null;
    if (!inflate) {
      reply.code(415).send({ error: `SERVING_ERR_BAD_INPUT: Content-Encoding ${printable(encoding, 32)} is not supported; send the body as gzip, deflate or uncompressed` });
      return reply;
    }
    const inflated = inflate as typeof inflate & { receivedEncodedLength: number };
    // fastify checks Content-Length against the bytes that came, not the decompressed ones.
    inflated.receivedEncodedLength = 0;
    payload.on("data", (chunk: Buffer) => (inflated.receivedEncodedLength += chunk.length));
    inflate.on("error", (err: Error & { statusCode?: number }) => {
      err.statusCode = 400;
      err.message = `the ${encoding} body does not decompress: ${err.message}`;
    });
    return payload.pipe(inflate);
  });
  const token = access.token;
  if (token) {
    // /metrics stays open (read-only, for Prometheus); the model API needs the token.
    app.addHook("onRequest", async (req, reply) => {
      if (!req.url.startsWith("/v1/") || bearerMatches(req.headers.authorization, token) || isAdmin(req.raw.socket)) return;
      reply.header("www-authenticate", 'Bearer realm="pangea-serving"');
      const what = `${req.method} ${req.url.split("?")[0]}`;
      return fail(
        reply,
        ServingErrors.create(
          "SERVING_ERR_UNAUTHENTICATED",
          req.headers.authorization ? `${what}: the Authorization header does not carry serving's API token` : `${what} needs the header Authorization: Bearer <serving's API token>`,
        ),
      );
    });
  }
  const route = /^\/v1\/models\/([^/:]+)(?:\/versions\/(\d+))?(?::(predict|pin))?$/;
  const metadataRoute = /^\/v1\/models\/([^/:]+)(?:\/versions\/(\d+))?\/metadata$/;
  // Refused before a body is read: a method the path does not take (the Allow header says which it does), and a pin
  // without the right to pin (under TLS without a token: an admin certificate), as a form body (what a web page can
  // send any server without asking: a page the operator opens must not change what every caller is served), or under
  // a version path (the version is the body's). A name this server does not serve is 404 first, as its GET is.
  app.addHook("onRequest", async (req, reply) => {
    const path = req.url.split("?")[0]!;
    const other = OTHER_METHODS.includes(req.method);
    if (!path.startsWith("/v1/models/") || (!other && !(req.method === "POST" && path.endsWith(":pin")))) return;
    const m = route.exec(path) ?? metadataRoute.exec(path);
    if (!m) return other ? reply.code(404).send({ error: unknownPath(req.method, path) }) : undefined;
    try {
      models.versions(m[1]!);
    } catch (err) {
      return fail(reply, err);
    }
    if (other) return wrongMethod(reply, req.method, path, route.test(path) ? m[3] : undefined);
    if ((req.raw.socket as TLSSocket).encrypted && !token && !isAdmin(req.raw.socket)) {
      return fail(reply, ServingErrors.create("SERVING_ERR_PERMISSION_DENIED", `POST ${printable(path, 200)} changes the version every caller is served: it needs an admin client certificate of the cluster CA (pangea certs writes admin.crt)`));
    }
    const type = req.headers["content-type"];
    if ((type ?? "").split(";")[0]!.trim().toLowerCase() !== "application/json") {
      return reply.code(415).send({ error: `SERVING_ERR_BAD_INPUT: a pin takes a JSON body with the header Content-Type: application/json (a form body is what any web page can send); ${contentTypeGot(type)}` });
    }
    if (m[2] !== undefined) {
      return fail(reply, ServingErrors.create("SERVING_ERR_BAD_INPUT", `POST ${printable(path, 200)}: a pin names its version in the body, not the path: POST /v1/models/${printable(m[1]!, 80)}:pin {"version": ${m[2]}}`));
    }
  });
  // Reached only through the hook above, which answers these methods; declared so that fastify routes them at all.
  app.route({ method: OTHER_METHODS, url: "/v1/models/*", handler: async (req, reply) => reply.code(404).send({ error: unknownPath(req.method, req.url.split("?")[0]!) }) });
  app.get("/v1/models/*", async (req, reply) => {
    const path = req.url.split("?")[0]!;
    const meta = metadataRoute.exec(path);
    const m = route.exec(path);
    // :predict and :pin are POSTed: a GET of one is the method wrong, not the path.
    if (!meta && m?.[3]) return wrongMethod(reply, "GET", path, m[3]);
    if (!meta && !m) return reply.code(404).send({ error: unknownPath("GET", path) });
    try {
      if (meta) {
        const servable = models.get(meta[1]!, versionIn(meta[2]));
        return {
          model_spec: { name: models.name, signature_name: "", version: String(servable.version) },
          metadata: { [METADATA_SIGNATURE_DEF]: { signature_def: { serving_default: signatureOf(servable.spec) } } },
        };
      }
      const versions = models.versions(m![1]!, versionIn(m![2]));
      return {
        // tasks, source, pinned and parameter_sync: Pangea's additions (TF Serving's status has no field for them), on loaded versions.
        model_version_status: versions.map((v) => ({
          version: String(v.version),
          state: v.state,
          status: { error_code: v.error ? "FAILED_PRECONDITION" : "OK", error_message: v.error },
          ...(v.tasks ? { tasks: v.tasks } : {}),
          ...(v.source ? { source: sourceFields(v.source) } : {}),
          ...(v.pinned ? { pinned: true } : {}),
          ...(v.synced ? { parameter_sync: { rows_applied: v.synced.rows, rows_removed: v.synced.tombstones, dense_updates: v.synced.dense, last_applied: new Date(v.synced.lastAt).toISOString(), last_sender: v.synced.sender } } : {}),
        })),
      };
    } catch (err) {
      return fail(reply, err);
    }
  });
  app.post("/v1/models/*", async (req, reply) => {
    const path = req.url.split("?")[0]!;
    const m = route.exec(path);
    const meta = metadataRoute.exec(path);
    if (!m && !meta) return reply.code(404).send({ error: unknownPath("POST", path) });
    try {
      // A model's status and metadata are read with GET: a POST to one is the method wrong, not the path (a name this
      // server does not serve, such as "ctr%3Apredict", is no model's status: 404, as its GET is).
      if (!m?.[3]) {
        models.versions((m ?? meta)![1]!);
        return wrongMethod(reply, "POST", path, undefined);
      }
      const body = (req.body ?? {}) as Json;
      if (m[3] === "pin") {
        // Pinning changes what every caller is served: the right to pin (under TLS an admin certificate, or serving's
        // API token where one is set), the content type and the path were checked before the body was read (the hooks
        // above); in plaintext without a token serving trusts every caller.
        const v = body.version;
        if (v !== null && !(typeof v === "number" && Number.isSafeInteger(v))) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `pin needs {"version": <a loaded version, a whole number>} or {"version": null} (serve the newest); got ${valueSnippet(v)}`);
        models.get(m[1]!); // the model must exist
        models.pin(v as number | null);
        return { pinned: v, serving: models.current()?.version ?? null };
      }
      const servable = models.get(m[1]!, versionIn(m[2]));
      const x = examplesFromJson(body, servable, maxBatch);
      const p = await batcher.predict(servable, x, () => req.raw.socket.destroyed);
      const outputs = outputsOf(servable.tasks);
      const T = servable.tasks.length;
      // TF Serving's REST shapes: by row, an example's value, or {output: value} when there are several outputs; by column, {output: [values]}.
      if (body.instances) {
        const predictions = outputs.length === 1 ? Array.from(p) : Array.from({ length: x.count }, (_, e) => Object.fromEntries(outputs.map((o) => [o.name, p[e * T + o.column]!])));
        return { predictions, model_version: servable.version };
      }
      return { outputs: Object.fromEntries(outputs.map((o) => [o.name, Array.from(taskColumn(p, T, o.column))])), model_version: servable.version };
    } catch (err) {
      return fail(reply, err);
    }
  });
  // Every answer is {"error": ...} as TF Serving's are, an unknown path's too (fastify's own would be another shape).
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: unknownPath(req.method, req.url.split("?")[0]!) });
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    if (err instanceof PangeaError) return fail(reply, err); // the in-flight budget's refusal, from the body parser
    // fastify's own refusals: body too large, a content type it has no parser for, JSON that does not parse.
    reply.code(err.statusCode ?? 500).send({ error: fastifyRefusal(err, req.headers["content-type"], maxBatch) });
  });
  const address = await app.listen({ host, port }).catch((err: Error) => {
    throw ServingErrors.create("SERVING_ERR_LISTEN", `cannot serve REST on ${host}:${port} (--rest-port): ${listenFailureReason(err)}`);
  });
  const url = new URL(address);
  return { app, address: `${url.hostname}:${url.port}` };
}

/** Levels of nesting a request may have; a predict body has four, the deepest ({"inputs": {"feature_ids": [[[...]]]}}) five. */
const MAX_JSON_DEPTH = 32;

/**
 * A request's JSON, refused unparsed when it nests past MAX_JSON_DEPTH. A "__proto__" key is refused, as fastify's parser does,
 * but named; so is a key given twice in one object (walkJson finds both).
 */
function parseRequestJson(text: string): unknown {
  // One walk before the parse: the depth is refused first, a refused key only once the text is known to be JSON.
  const { tooDeep, refusedKey: refused } = walkJson(text, true, MAX_JSON_DEPTH);
  if (tooDeep) {
    throw new Error(`the body nests arrays and objects more than ${MAX_JSON_DEPTH} deep; a predict body nests five at most ({"inputs": {"feature_ids": [[[ids]]]}})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`the body is not valid JSON: ${printable((err as Error).message, 120)}`);
  }
  if (refused === null) return value;
  if (!refused.twice) throw new Error('the body has a key "__proto__", which no input is named');
  throw new Error(`the body gives the key ${JSON.stringify(printable(refused.key, 80))} twice in one object; JSON.parse would keep only the last: give each key once`);
}

/** A URL's version: digits, within what a version number can be (a longer one would be read as, and echoed as, 1e+23). */
function versionIn(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!Number.isSafeInteger(v)) throw ServingErrors.create("SERVING_ERR_UNKNOWN_MODEL", `no version ${printable(text, 40)}: a version is an integer below 2^53`);
  return v;
}

function fastifyRefusal(err: Error & { statusCode?: number }, contentType: string | undefined, maxBatch: number): string {
  if (err.statusCode === 413) return `SERVING_ERR_TOO_LARGE: request body above ${Math.max(1 << 20, maxBatch * 1024)} bytes`;
  if (err.statusCode === 415) return `SERVING_ERR_BAD_INPUT: expected a JSON body with the header Content-Type: application/json; ${contentTypeGot(contentType)}`;
  return `SERVING_ERR_BAD_INPUT: ${err.message}`;
}

/** Methods the model API's paths take none of (fastify's own; others, TRACE and the like, are unknown paths to it). */
const OTHER_METHODS = ["PUT", "DELETE", "PATCH", "OPTIONS"];

/** A path the REST API does not have, for `method`. */
function unknownPath(method: string, path: string): string {
  return `no such resource: ${method} ${printable(path, 200)}; serving's REST API is GET /v1/models/<name>[/versions/<v>][/metadata] and POST /v1/models/<name>[/versions/<v>]:predict`;
}

/** 405 for a path of the API given the wrong method: `verb` (predict, pin) takes POST, a status or metadata path GET. */
function wrongMethod(reply: FastifyReply, method: string, path: string, verb: string | undefined): FastifyReply {
  const why = verb ? `${verb} takes POST with a JSON body` : "the model's status and metadata take GET; predict with POST /v1/models/<name>[/versions/<v>]:predict";
  return reply.code(405).header("allow", verb ? "POST" : "GET").send({ error: `${method} ${printable(path, 200)}: ${why}` });
}

/** What a request's Content-Type was, for a refusal of it. */
function contentTypeGot(type: string | undefined): string {
  return type ? `got ${printable(type, 64)}` : "the request has no Content-Type header";
}
