import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { refusedJsonKey } from "@pangea/kit";

const refusedKey = (text: string) => {
  const r = refusedJsonKey(text, true);
  return r && { key: r.key, twice: r.twice };
};

describe("refusedKey", () => {
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
    ['{"__proto__x":1,"x__proto__":2,"v":"__proto__"}', null],
  ])("%s -> %j twice", (text, key) => {
    JSON.parse(text); // every case is valid JSON
    expect(refusedKey(text)).toEqual(key === null ? null : { key, twice: true });
  });

  it.each([
    '{"__proto__":1}',
    '[1,{"a":{"__proto__":{"x":1}}}]',
    '{"\\u005f_proto__":[]}',
    '{"__proto__":1,"__proto__":2}',
    '{"a":1,"__proto__":2,"a":3}',
  ])("%s -> __proto__", (text) => {
    JSON.parse(text);
    expect(refusedKey(text)).toEqual({ key: "__proto__", twice: false });
  });

  it("agrees with a parse that counts keys, on any JSON value (property)", () => {
    // Reference: the generated value itself, whose objects are lists of entries (so keys may repeat), printed by hand;
    // a key is sometimes spelt with \u escapes, which name the same key.
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
    const escaped = (k: string) => `"${[...k].map((ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`).join("")}"`;
    let spell = 0;
    const key = (k: string) => (spell++ % 3 === 2 ? escaped(k) : JSON.stringify(k));
    // Whitespace around the separators when `spaced` (JSON allows it there, and only there).
    const print = (v: J, spaced: boolean): string => {
      const [comma, colon] = spaced ? [" ,\n ", " : "] : [",", ":"];
      if (Array.isArray(v)) return `[${v.map((x) => print(x, spaced)).join(comma)}]`;
      if (v && typeof v === "object") return `{${v.entries.map(([k, x]) => `${key(k)}${colon}${print(x, spaced)}`).join(comma)}}`;
      return JSON.stringify(v);
    };
    fc.assert(
      fc.property(json, fc.boolean(), (v, spaced) => {
        const text = print(v, spaced);
        JSON.parse(text);
        expect(refusedKey(text) !== null).toBe(repeatsKey(v));
      }),
      { numRuns: 500 },
    );
  });
});
