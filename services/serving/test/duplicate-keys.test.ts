import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { duplicateKey } from "../src/api/duplicate-keys.js";

describe("duplicateKey", () => {
  it.each([
    ['{"a":1,"a":2}', "a"],
    ['{"a":1,"\\u0061":2}', "a"],
    ['{"k":"a,b","k2":"{\\"k\\":1}","k":3}', "k"],
    ['{"":1,"":2}', ""],
    ['{"a\\\\":1,"a\\\\":2}', "a\\"],
    ['[{"x":1,"y":{"x":[1,{"x":2,"x":3}]}}]', "x"],
    ['{"a":{"b":1},"c":{"b":2}}', null],
    ['{"a":"\\"a\\"","b":[{"a":1},{"a":2}]}', null],
    ['{"a":[],"b":{},"c":[{}],"d":"}{]["}', null],
    ["[1,2,3]", null],
    ['"a"', null],
  ])("%s -> %j", (text, key) => {
    JSON.parse(text); // every case is valid JSON
    expect(duplicateKey(text)).toBe(key);
  });

  it("agrees with a parse that counts keys, on any JSON value (property)", () => {
    // Reference: objects rebuilt from the text's structure by a parser that keeps every key (a reviver sees only the last).
    const repeatsKey = (v: unknown): boolean => {
      if (Array.isArray(v)) return v.some(repeatsKey);
      if (v && typeof v === "object") {
        const entries = (v as { entries: [string, unknown][] }).entries;
        return new Set(entries.map(([k]) => k)).size !== entries.length || entries.some(([, x]) => repeatsKey(x));
      }
      return false;
    };
    // Objects as lists of entries, so generated keys may repeat; printed as JSON by hand.
    type J = null | number | string | J[] | { entries: [string, J][] };
    const { json } = fc.letrec<{ json: J }>((tie) => ({
      json: fc.oneof(
        { depthSize: "small" },
        fc.constant(null),
        fc.integer(),
        fc.string({ maxLength: 4 }),
        fc.array(tie("json"), { maxLength: 4 }),
        fc.array(fc.tuple(fc.constantFrom("a", "b", "\\", '"', ",", "{", "é"), tie("json")), { maxLength: 4 }).map((entries) => ({ entries })),
      ),
    }));
    const print = (v: J): string =>
      Array.isArray(v) ? `[${v.map(print).join(",")}]` : v && typeof v === "object" ? `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${print(x)}`).join(",")}}` : JSON.stringify(v);
    fc.assert(
      fc.property(json, fc.boolean(), (v, spaced) => {
        // Whitespace around separators (inside strings too: keys and values change alike, and stay valid JSON).
        const text = spaced ? print(v).replace(/([,:])/g, " $1 ") : print(v);
        JSON.parse(text);
        expect(duplicateKey(text) !== null).toBe(repeatsKey(v));
      }),
      { numRuns: 500 },
    );
  });
});
