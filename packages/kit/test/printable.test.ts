import { describe, expect, it } from "vitest";
import { printable, printableBytes } from "../src/printable.js";
import { printableNames, valueSnippet } from "../src/value-kind.js";

describe("printable", () => {
  it.each([
    ["plain text stays", "trainer-0 on wasm+blas", "trainer-0 on wasm+blas"],
    ["ESC and CSI become \\x1b", "\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"],
    ["newlines cannot forge lines", "a\nb\r\tc", "a\\nb\\r\\tc"],
    ["NUL, DEL and C1 controls", "\x00\x7f\x9b", "\\x00\\x7f\\x9b"],
    ["line separator and bidi override", "a\u2028b\u202ec", "a\\u{2028}b\\u{202e}c"],
    ["a lone surrogate", "x\ud800y", "x\\u{d800}y"],
    ["a surrogate pair stays", "ok \u{1f600}", "ok \u{1f600}"],
    ["non-ASCII letters stay", "Zürich 東京", "Zürich 東京"],
  ])("%s", (_what, input, want) => {
    expect(printable(input)).toBe(want);
  });

  it("cuts long text and says how much", () => {
    expect(printable("x".repeat(300), 10)).toBe(`${"x".repeat(10)}… (290 more chars)`);
  });

  it("bytes: printable ASCII as is, every other byte as \\xNN", () => {
    expect(printableBytes(Buffer.from([0x31, 0x1b, 0x5b, 0x00, 0xff, 0x41]))).toBe("1\\x1b[\\x00\\xffA");
    expect(printableBytes(Buffer.alloc(100, 0x41), 4)).toBe("AAAA… (96 more bytes)");
  });
});

describe("valueSnippet", () => {
  it("quotes a string with each character escaped once, cut at max", () => {
    expect(valueSnippet("1\n2")).toBe('"1\\n2"');
    expect(valueSnippet('say "hi"\\')).toBe('"say \\"hi\\"\\\\"');
    expect(valueSnippet("a\u202eb\u0085")).toBe('"a\\u{202e}b\\x85"');
    expect(valueSnippet("x".repeat(70), 64)).toBe(`"${"x".repeat(64)}… (6 more chars)"`);
    expect(valueSnippet("\ud800")).toBe('"\\ud800"');
  });

  it("gives a list or an object by its kind only, however deep", () => {
    let deep: unknown = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(valueSnippet(deep)).toBe("a list");
    expect(valueSnippet({ a: 1 })).toBe("an object");
    expect(valueSnippet(null)).toBe("null");
    expect(valueSnippet(2.5)).toBe("2.5");
  });
});

describe("printableNames", () => {
  it("quotes each name, so a newline, a backslash-n and a comma inside a name read apart", () => {
    expect(printableNames(["a\nb", "a\\nb", "x, y"])).toBe('"a\\nb", "a\\\\nb", "x, y"');
  });

  it("shows the first few, each cut, then how many more", () => {
    const names = ["k".repeat(100), ...Array.from({ length: 9 }, (_, i) => `n${i}`)];
    expect(printableNames(names, 3, 10)).toBe(`"${"k".repeat(10)}… (90 more chars)", "n0", "n1" and 7 more`);
  });
});
