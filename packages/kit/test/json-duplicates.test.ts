import { describe, expect, it } from "vitest";
import { duplicateJsonKey, refusedJsonKey, walkJson } from "../src/json-duplicates.js";

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

describe("walkJson", () => {
  const deep = (text: string, max: number) => walkJson(text, false, max).tooDeep;
  it("counts arrays and objects, not brackets inside strings (escaped quotes included), and stops past the limit", () => {
    expect(deep('{"a": [[1]]}', 3)).toBe(false);
    expect(deep('{"a": [[1]]}', 2)).toBe(true);
    expect(deep('{"a": "[[[[{{{{", "b\\"[[[": [1, [2], {"c": 3}]}', 3)).toBe(false);
    expect(deep('[1], [2], [3], {"x": {}}', 2)).toBe(false);
    expect(deep("[".repeat(1_000_000), 32)).toBe(true);
    // An unterminated string ends the walk (JSON.parse then names the syntax error).
    expect(deep('["abc', 1)).toBe(false);
  });

  it("a refused key does not end the walk before the depth is known; text that is not JSON (a bad escape in a key) is walked without throwing", () => {
    expect(walkJson(`{"a": 1, "a": 2, "b": ${"[".repeat(100)}${"]".repeat(100)}}`, false, 32)).toEqual({ tooDeep: true, refusedKey: { key: "a", path: "a", twice: true } });
    expect(walkJson('{"\\q": 1, "\\q": 2, "x": [}', false, 32)).toEqual({ tooDeep: false, refusedKey: { key: "\\q", path: "\\q", twice: true } });
    expect(walkJson('{"__proto__": 1, "__proto__": 2}', true, 32).refusedKey).toEqual({ key: "__proto__", path: "__proto__", twice: false });
  });
});
