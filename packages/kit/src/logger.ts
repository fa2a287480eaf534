import { createRequire } from "node:module";
import { pino, type Logger } from "pino";
import type PinoPretty from "pino-pretty";

const require = createRequire(import.meta.url);

export type { Logger };

/**
 * Structured JSON logs on stderr, one object per line, with the service name
 * in every line (children add job, worker, step). On a terminal they are
 * printed human-readable instead, unless PANGEA_LOG_FORMAT=json; stdout is
 * kept for the one machine-readable "ready" line.
 */
export function createLogger(service: string, level: string = process.env.PANGEA_LOG_LEVEL ?? "info"): Logger {
  const opts = { name: service, level, base: { service, pid: process.pid } };
  const format = process.env.PANGEA_LOG_FORMAT ?? (process.stderr.isTTY ? "pretty" : "json");
  if (format === "pretty") {
    // Loaded only here: every service starts with this logger, and in JSON mode (containers, CI, pipes) it is never used.
    const pretty = require("pino-pretty") as typeof PinoPretty;
    return pino(opts, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, translateTime: "HH:MM:ss.l", ignore: "pid,hostname,name", singleLine: true }));
  }
  return pino(opts, pino.destination({ fd: 2, sync: true }));
}
