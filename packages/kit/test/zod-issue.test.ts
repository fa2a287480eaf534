import { z } from "zod";
import { describe, expect, it } from "vitest";
import { zodIssueText } from "../src/index.js";

const schema = z
  .object({
    width: z.number().int().positive(),
    rate: z.number().min(0).max(1),
    pooling: z.enum(["sum", "mean"]),
    layers: z.array(z.number()).min(1),
    init: z.discriminatedUnion("kind", [z.object({ kind: z.literal("zeros") }), z.object({ kind: z.literal("constant"), value: z.number() })]),
    name: z.string().min(2, "expected a name of at least 2 characters"),
    widths: z.array(z.number({ message: "expected widths as a list of numbers" })).max(2, "expected widths of at most 2 layers"),
    both: z.object({ a: z.number(), b: z.number() }).refine((o) => o.a < o.b, "expected a below b, as given"),
  })
  .partial()
  .strict();

const text = (input: unknown) => {
  const r = schema.safeParse(input);
  if (r.success) throw new Error("parsed");
  const issue = r.error.issues[0]!;
  return `${issue.path.join(".")}: ${zodIssueText(issue, input, () => `it takes ${Object.keys(schema.shape).join(", ")}`)}`;
};

describe("a zod issue about a user's file, as one phrase saying what was expected and what was given", () => {
  it.each([
    [{ width: "8" }, 'width: expected a number, got "8"'],
    [{ width: 2.5 }, "width: expected a whole number, got 2.5"],
    [JSON.parse('{"rate": 1e400}'), "rate: expected a finite number, got Infinity"],
    [{ width: 0 }, "width: expected a number > 0, got 0"],
    [{ rate: 2 }, "rate: expected a number <= 1, got 2"],
    [{ pooling: "max" }, 'pooling: expected one of "sum", "mean", got "max"'],
    [{ layers: [] }, "layers: expected a list of at least 1 items, got 0"],
    [{ layers: {} }, "layers: expected a list, got an object"],
    [{ init: { kind: "normal" } }, 'init.kind: expected one of "zeros", "constant", got "normal"'],
    [{ init: { kind: "constant" } }, "init.value: expected a number, got nothing"],
    [{ widht: 8 }, ': unknown field "widht"; it takes width, rate, pooling, layers, init, name, widths, both'],
    // A schema's own message gets what was given, as zod's wording does; a list's length where it counts items.
    [{ name: "x" }, 'name: expected a name of at least 2 characters, got "x"'],
    [{ widths: [64, "32"] }, 'widths.1: expected widths as a list of numbers, got "32"'],
    [{ widths: [1, 2, 3] }, "widths: expected widths of at most 2 layers, got 3"],
    // A refinement over several fields quotes no one value.
    [{ both: { a: 2, b: 1 } }, "both: expected a below b, as given"],
    [{ pooling: "a\u001b[31m" }, 'pooling: expected one of "sum", "mean", got "a\\u001b[31m"'],
  ])("%j -> %s", (input, expected) => {
    expect(text(input)).toBe(expected);
  });
});
