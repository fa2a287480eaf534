import { afterEach, describe, expect, it } from "vitest";
import { createLogger, UsageError } from "../src/index.js";

describe("createLogger's environment", () => {
  const saved = { level: process.env.PANGEA_LOG_LEVEL, format: process.env.PANGEA_LOG_FORMAT };
  afterEach(() => {
    for (const [k, v] of [["PANGEA_LOG_LEVEL", saved.level], ["PANGEA_LOG_FORMAT", saved.format]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it.each([
    ["PANGEA_LOG_LEVEL", "bogus", 'invalid PANGEA_LOG_LEVEL (environment): expected one of fatal, error, warn, info, debug, trace, silent, got "bogus"'],
    ["PANGEA_LOG_LEVEL", "INFO", 'invalid PANGEA_LOG_LEVEL (environment): expected one of fatal, error, warn, info, debug, trace, silent, got "INFO"'],
    ["PANGEA_LOG_FORMAT", "xml", 'invalid PANGEA_LOG_FORMAT (environment): expected one of json, pretty, got "xml"'],
  ])("%s=%s is a usage error naming the variable", (name, value, message) => {
    process.env[name] = value;
    let thrown: unknown;
    try {
      createLogger("test");
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UsageError);
    expect((thrown as Error).message).toBe(message);
  });

  it("a value among the choices, or none (empty counts as unset), makes a logger at that level", () => {
    process.env.PANGEA_LOG_FORMAT = "json";
    process.env.PANGEA_LOG_LEVEL = "warn";
    expect(createLogger("test").level).toBe("warn");
    process.env.PANGEA_LOG_LEVEL = "";
    expect(createLogger("test").level).toBe("info");
  });
});
