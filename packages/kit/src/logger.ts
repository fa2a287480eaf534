import { createRequire } from "node:module";
import { pino, type Logger } from "pino";
import type PinoPretty from "pino-pretty";
import { UsageError } from "./config.js";
import { printable } from "./printable.js";

const require = createRequire(import.meta.url);

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const FORMATS = ["json", "pretty"] as const;

/** An environment variable's value among `choices`, or undefined when unset or empty; another value is a usage error naming it. */
function envChoice(name: string, choices: readonly string[]): string | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  if (!choices.includes(v)) throw new UsageError(`invalid ${name} (environment): expected one of ${choices.join(", ")}, got "${printable(v, 80)}"`);
  return v;
}

export type { Logger };

/**
 * Structured JSON logs on stderr, one object per line, with the service name
 * in every line (children add job, worker, step). On a terminal they are
 * printed human-readable instead, unless PANGEA_LOG_FORMAT=json; stdout is
 * kept for the one machine-readable "ready" line.
 */
export function createLogger(service: string, level: string = envChoice("PANGEA_LOG_LEVEL", LEVELS) ?? "info"): Logger {
  const opts = { name: service, level, base: { service, pid: process.pid } };
  const format = envChoice("PANGEA_LOG_FORMAT", FORMATS) ?? (process.stderr.isTTY ? "pretty" : "json");
  if (format === "pretty") {
    // Loaded only here: every service starts with this logger, and in JSON mode (containers, CI, pipes) it is never used.
    const pretty = require("pino-pretty") as typeof PinoPretty;
    return pino(opts, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, translateTime: "HH:MM:ss.l", ignore: "pid,hostname,name", singleLine: true }));
  }
  return pino(opts, pino.destination({ fd: 2, sync: true }));
}
