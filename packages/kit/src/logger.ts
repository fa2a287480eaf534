import { pino, type Logger } from "pino";

export type { Logger };

/**
 * Structured JSON logs on stderr, one object per line, with the service name
 * in every line. stdout is kept for the one machine-readable "ready" line.
 */
export function createLogger(service: string, level: string = process.env.PANGEA_LOG_LEVEL ?? "info"): Logger {
  return pino({ name: service, level, base: { service, pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}
