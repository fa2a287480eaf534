import { z } from "zod";
import { flag } from "./flags.js";

/** Reusable config field schemas, so every service validates the same things the same way. */
/**
 * Numbers as flags and environment variables spell them. z.coerce.number
 * took "" as 0, " 7" as 7 and "0x10" as 16: a flag left empty by a shell
 * variable silently became 0. Strings must be plain decimals here.
 */
const INTEGER_TEXT = /^[-+]?\d+$/;
const DECIMAL_TEXT = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;
const numberFrom = (text: RegExp) => (v: unknown) => (typeof v === "string" ? (text.test(v) ? Number(v) : Number.NaN) : v);

/** A whole number given as decimal digits (or a number from a config file). */
export const integerNumber = (message: string) => z.preprocess(numberFrom(INTEGER_TEXT), z.number({ message }).int(message));
/** A number given as a decimal, with an optional exponent (1e-3). */
export const decimalNumber = (message: string) => z.preprocess(numberFrom(DECIMAL_TEXT), z.number({ message }));

export const port = integerNumber("expected a port 0..65535").pipe(z.number().min(0, "expected a port 0..65535").max(65535, "expected a port 0..65535"));

/** A port to connect to, 1..65535, as a regular expression's source (host:99999 would pass \\d{1,5} and fail later inside the socket code). */
const CONNECT_PORT = "(?:6553[0-5]|655[0-2]\\d|65[0-4]\\d\\d|6[0-4]\\d{3}|[1-5]\\d{4}|[1-9]\\d{0,3})";
/** host:port with a port to connect to. */
export const HOST_PORT_RE = new RegExp(`^(?:\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9._-]+):${CONNECT_PORT}$`);

export const address = z.string().regex(HOST_PORT_RE, "expected host:port (a port 1..65535)");

/** Bounds beyond the field's own (at most 64 shards), with the message to give when a value is outside them. */
export interface IntBounds {
  min?: number;
  max?: number;
  message: string;
}
const bounded = (n: z.ZodNumber, b?: IntBounds) => {
  if (b?.min !== undefined) n = n.min(b.min, b.message);
  if (b?.max !== undefined) n = n.max(b.max, b.message);
  return n;
};

/** A whole-number field's message, with its range: 2.5, 1e3 and 2^53 are refused as not whole numbers it can hold. */
const expectedWhole = (what: string, least: number, bounds?: IntBounds) => `expected ${what}: a whole number from ${bounds?.min ?? least} to ${bounds?.max ?? "2^53 - 1"}`;

export const positiveInt = (what: string, bounds?: IntBounds) => {
  const message = expectedWhole(what, 1, bounds);
  return integerNumber(message).pipe(bounded(z.number().positive(message), bounds));
};

export const nonNegativeInt = (what: string, bounds?: IntBounds) => {
  const message = expectedWhole(what, 0, bounds);
  return integerNumber(message).pipe(bounded(z.number().min(0, message), bounds));
};

/**
 * Node's timers hold at most 2^31 - 1 ms (about 24.8 days); a longer one
 * fires after 1 ms, so a huge poll or heartbeat interval became a busy loop.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;
const TIMER_LIMIT = `at most ${MAX_TIMER_MS} ms (about 24.8 days, Node's timer limit)`;
/** A duration in milliseconds that a timer waits. */
export const milliseconds = (min: "positive" | "zero" = "positive") =>
  (min === "positive" ? positiveInt : nonNegativeInt)("milliseconds", { max: MAX_TIMER_MS, message: `expected ${TIMER_LIMIT}` });
/** A duration in whole seconds that a timer waits. */
export const wholeSeconds = (min: "positive" | "zero" = "positive") =>
  (min === "positive" ? positiveInt : nonNegativeInt)("seconds", { max: Math.floor(MAX_TIMER_MS / 1000), message: `expected ${TIMER_LIMIT}` });
/** A duration in seconds, fractions allowed, that a timer waits. */
export const seconds = () => decimalNumber("expected seconds").pipe(z.number().positive("expected positive seconds").max(MAX_TIMER_MS / 1000, `expected ${TIMER_LIMIT}`));

/** A seed: the generators take 32 bits, so a larger one would fold onto a smaller (2^32 gave seed 0's data). */
export const seedNumber = () => nonNegativeInt("a seed", { max: 2 ** 32 - 1, message: "expected a seed below 2^32 (seeds are 32-bit)" });

export const intList = (what: string) =>
  z
    .string()
    .regex(/^\d+(,\d+)*$/, `expected ${what} as comma-separated positive integers, e.g. 64,16`)
    .transform((s) => s.split(",").map(Number))
    .refine((xs) => xs.every((x) => x > 0), `expected ${what} as positive integers`);

/**
 * A worker id: 1-128 characters of letters, digits and `._:@-`. The
 * orchestrator refuses any other at registration (ids land in status, logs,
 * the dashboard and metric labels); services check their own at start.
 */
export const WORKER_ID_RE = /^[A-Za-z0-9._:@-]{1,128}$/;
export const workerId = (fallback: string) =>
  z.string().regex(WORKER_ID_RE, "expected 1-128 characters of letters, digits, '.', '_', ':', '@' or '-'").default(fallback);

/** --discovery's values (etcd endpoints with ports to connect to). */
export const DISCOVERY_RE = new RegExp(`^(?:static|tf-config|etcd://[A-Za-z0-9._-]+:${CONNECT_PORT}(?:,[A-Za-z0-9._-]+:${CONNECT_PORT})*)$`);

/** Fields every service shares for finding the orchestrator (see @pangea/rpc's discovery). */
export const discoveryFields = {
  discovery: flag(
    z
      .string()
      .regex(DISCOVERY_RE, "expected static, tf-config or etcd://host:port[,host:port] (ports 1..65535)")
      .default("static"),
    { env: "PANGEA_DISCOVERY", description: "how to find the orchestrator: static (--orchestrator), tf-config (TF_CONFIG) or etcd://host:port[,host:port]" },
  ),
  clusterName: flag(z.string().regex(/^[A-Za-z0-9._-]+$/, "expected letters, digits, '.', '_' or '-'").default("pangea"), {
    env: "PANGEA_CLUSTER_NAME",
    description: "the cluster's namespace in the etcd registry",
  }),
  discoveryLeaseSeconds: flag(integerNumber("expected seconds").pipe(z.number().min(2, "expected at least 2 seconds").max(3600, "expected at most 3600 seconds")).default(10), {
    env: "PANGEA_DISCOVERY_LEASE_SECONDS",
    description: "etcd: a dead service's entry disappears after this long",
  }),
};

/** Fields every service shares for mutual TLS (see @pangea/rpc's security). */
export const tlsFields = {
  tlsDir: flag(z.string().min(1, "expected a directory").optional(), {
    env: "PANGEA_TLS_DIR",
    description: "turn on mutual TLS: a directory made by 'pangea certs' holding ca.crt and this process's NAME.crt and NAME.key",
  }),
  tlsName: flag(z.string().regex(WORKER_ID_RE, "expected a certificate name: 1-128 characters of letters, digits, '.', '_', ':', '@' or '-'").optional(), {
    env: "PANGEA_TLS_NAME",
    description: "with --tls-dir: the certificate to present (NAME.crt/NAME.key): the role's shared one, or a per-worker one",
    shown: "the service's role",
  }),
};

/** Where /metrics (and the orchestrator's dashboard) listen; both are read-only. */
export const metricsHostField = {
  metricsHost: flag(z.string().min(1, "expected an interface address").optional(), {
    env: "PANGEA_METRICS_HOST",
    description: "interface of the /metrics HTTP server (and the orchestrator's dashboard): 127.0.0.1 keeps them to this machine",
    shown: "same as --host",
  }),
};

/** Who may read /metrics (and the orchestrator's dashboard): anyone who reaches the port, or a token's holders. */
export const metricsTokenFileField = {
  metricsTokenFile: flag(z.string().min(1, "expected a file").optional(), {
    env: "PANGEA_METRICS_TOKEN_FILE",
    description: "a file holding a token (16 to 1024 printable characters) that /metrics (and the orchestrator's dashboard) then ask for: 'authorization: Bearer <token>' (Prometheus: authorization.credentials_file) or HTTP Basic with the token as the password (a browser asks for it); HTTP 401 otherwise",
  }),
};
