import { describe, expect, it } from "vitest";
import { z } from "zod";
import { parseConfig, withNegativeValues, type FlagTable } from "../src/index.js";

const FLAGS: FlagTable = { lr: { description: "rate" }, name: { description: "name" }, quiet: { description: "no output", boolean: true } };
const schema = z.object({ lr: z.coerce.number().min(0, "expected a rate >= 0").optional(), name: z.string().optional(), quiet: z.boolean().optional() }).strict();

describe("a negative number after a flag that takes a value", () => {
  it("is that flag's value, so the flag's own check names it", () => {
    expect(() => parseConfig(schema, FLAGS, ["--lr", "-1"], {})).toThrow("invalid --lr: expected a rate >= 0");
    expect(() => parseConfig(schema, FLAGS, ["--lr", "-.5"], {})).toThrow("invalid --lr: expected a rate >= 0");
  });

  it("only numbers, only after a flag taking a value, and never twice", () => {
    const takes = (n: string) => n === "lr" || n === "name";
    expect(withNegativeValues(["--lr", "-1", "--name", "-x", "--quiet", "-2", "--lr=-3", "--lr", "-4e2"], takes)).toEqual(["--lr=-1", "--name", "-x", "--quiet", "-2", "--lr=-3", "--lr=-4e2"]);
  });
});

describe("a flag given no value before another flag", () => {
  it("is refused in one line: node's sentences joined by spaces, not a literal \\n between them", () => {
    let message = "";
    try {
      parseConfig(schema, FLAGS, ["--name", "--lr", "1"], {});
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^Option '--name' argument is ambiguous\. Did you forget/);
    expect(message).not.toContain("\n");
  });
});
