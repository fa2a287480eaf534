import { describe, expect, it } from "vitest";
import { z } from "zod";
import { decimalNumber, nonNegativeInt, parseConfig, port, positiveInt, type FlagTable } from "../src/index.js";

const FLAGS: FlagTable = { seed: { description: "seed" }, shards: { description: "shards" }, lr: { description: "rate" }, port: { description: "port" } };
const schema = z
  .object({
    seed: nonNegativeInt("a seed").default(42),
    shards: positiveInt("shards", { max: 64, message: "expected at most 64 shards" }).default(1),
    lr: decimalNumber("expected a rate").pipe(z.number().positive("expected a positive rate")).default(0.1),
    port: port.default(0),
  })
  .strict();
const parse = (argv: string[], env: Record<string, string> = {}) => parseConfig(schema, FLAGS, argv, env);

describe("numbers given as flags", () => {
  it("take plain decimals, signs and (for decimals) exponents", () => {
    expect(parse(["--seed", "7", "--shards", "+3", "--lr", ".5e-2", "--port", "8500"])).toEqual({ seed: 7, shards: 3, lr: 0.005, port: 8500 });
    expect(parse([])).toEqual({ seed: 42, shards: 1, lr: 0.1, port: 0 });
  });

  // z.coerce.number had taken "" as 0: a flag left empty by an unset shell variable became 0 silently.
  it.each([
    ["--seed", "", "expected a seed"],
    ["--seed", " 7", "expected a seed"],
    ["--seed", "0x10", "expected a seed"],
    ["--seed", "1e3", "expected a seed"],
    ["--seed", "1.5", "expected a seed"],
    ["--seed", "-1", "expected a seed"],
    ["--shards", "65", "expected at most 64 shards"],
    ["--shards", "0", "expected shards"],
    ["--lr", "", "expected a rate"],
    ["--lr", "1,5", "expected a rate"],
    ["--lr", "Infinity", "expected a rate"],
    ["--port", "", "expected a port 0..65535"],
    ["--port", "65536", "expected a port 0..65535"],
  ])("%s %j is refused naming the flag", (flag, value, message) => {
    expect(() => parse([`${flag}=${value}`])).toThrow(`invalid ${flag}: ${message}`);
  });
});
