import { describe, expect, it } from "vitest";
import { duplicateJsonKey, refusedJsonKey } from "../src/json-duplicates.js";
import { jsonNestsBeyond } from "../src/json-depth.js";

describe("duplicateJsonKey", () => {
  it("names the first key an object gives twice, with its path; keys in different objects or in strings are no duplicates", () => {
    expect(duplicateJsonKey('{"deepMlp": [64], "dropout": 0.1, "deepMlp": [128]}')).toBe("deepMlp");
    expect(duplicateJsonKey('{"slots": {"3": {"dim": 8}, "4": {"dim": 8, "dim": 16}}}')).toBe("slots.4.dim");
    expect(duplicateJsonKey('{"slots": [{"name": "a", "slot": 1}, {"name": "b", "slot": 2, "name": "c"}]}')).toBe("slots[1].name");
    expect(duplicateJsonKey('{"a": {"x": 1}, "b": {"x": 1}, "c": [{"x": 1}, {"x": 2}]}')).toBeNull();
    // Escapes, a key-like string as a value, the same text escaped otherwise (the same key once parsed).
    expect(duplicateJsonKey('{"a\\"": "b:", "list": ["a\\"", ":"], "a": 1}')).toBeNull();
    expect(duplicateJsonKey('{"a": 1, "\\u0061": 2}')).toBe("a");
    expect(duplicateJsonKey('{"a" : 1, "a"\n:2}')).toBe("a");
    expect(duplicateJsonKey("[1, 2, {}]")).toBeNull();
    // Not JSON: no hang on an unterminated string.
    expect(duplicateJsonKey('{"a": "b')).toBeNull();
    // Independent check: every key-ordering a JSON.parse round trip keeps is free of duplicates.
    const big = JSON.stringify({ slots: Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, slot: i, nested: { name: i } })) });
    expect(duplicateJsonKey(big)).toBeNull();
  });

  it("refusedJsonKey: __proto__ where asked, with its path, before a later key given twice; keys spelt with escapes are the names they decode to", () => {
    expect(refusedJsonKey('{"a": [1, {"b": {"__proto__": {}}}], "a": 2}', true)).toEqual({ key: "__proto__", path: "a[1].b.__proto__", twice: false });
    expect(refusedJsonKey('{"a": [1, {"b": {"__proto__": {}}}], "a": 2}')).toEqual({ key: "a", path: "a", twice: true });
    expect(refusedJsonKey('{"x": [{}, {"k": 1, "\\u006b": 2}]}')).toEqual({ key: "k", path: "x[1].k", twice: true });
    expect(refusedJsonKey('[{"k": 1}, {"k": 2}]', true)).toBeNull();
  });
});

describe("jsonNestsBeyond", () => {
  it("counts arrays and objects, not brackets inside strings (escaped quotes included), and stops past the limit", () => {
    expect(jsonNestsBeyond('{"a": [[1]]}', 3)).toBe(false);
    expect(jsonNestsBeyond('{"a": [[1]]}', 2)).toBe(true);
    expect(jsonNestsBeyond('{"a": "[[[[{{{{", "b\\"[[[": [1, [2], {"c": 3}]}', 3)).toBe(false);
    expect(jsonNestsBeyond('[1], [2], [3], {"x": {}}', 2)).toBe(false);
    expect(jsonNestsBeyond(`${"[".repeat(1_000_000)}`, 32)).toBe(true);
    // An unterminated string ends the walk (JSON.parse then names the syntax error).
    expect(jsonNestsBeyond('["abc', 1)).toBe(false);
  });
});
