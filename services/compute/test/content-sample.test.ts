import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { contentSample } from "../src/sources/content-sample.js";

describe("contentSample", () => {
  const dir = mkdtempSync(join(tmpdir(), "pangea-content-sample-"));
  const file = (name: string, bytes: Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const big = Buffer.alloc(100_000, 7);

  it("is the files' bytes, not their names: a copy samples the same, other bytes of the same length do not", () => {
    const a = file("a.tsv", big);
    const copy = join(dir, "copy.tsv");
    copyFileSync(a, copy);
    expect(contentSample([copy])).toBe(contentSample([a]));
    expect(contentSample([a])).toMatch(/^[0-9a-f]{32}$/);
    const head = Buffer.from(big);
    head[10] = 8;
    const tail = Buffer.from(big);
    tail[tail.length - 10] = 8;
    expect(new Set([contentSample([a]), contentSample([file("head.tsv", head)]), contentSample([file("tail.tsv", tail)])]).size).toBe(3);
  });

  it("covers every file, in order, and small and empty ones", () => {
    const a = file("x", Buffer.from("one\n"));
    const b = file("y", Buffer.from("two\n"));
    const empty = file("empty", Buffer.alloc(0));
    expect(contentSample([a, b])).not.toBe(contentSample([b, a]));
    expect(contentSample([a, b])).not.toBe(contentSample([a]));
    expect(contentSample([a, empty])).not.toBe(contentSample([a]));
  });

  it("samples the ends only: a change in the middle of a large file passes (its record count usually tells)", () => {
    const mid = Buffer.from(big);
    mid[50_000] = 8;
    expect(contentSample([file("mid.tsv", mid)])).toBe(contentSample([file("same.tsv", big)]));
  });

  it("is none for a FIFO (read once, into the record cache): it is not opened again", () => {
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    expect(contentSample([file("plain", Buffer.from("x")), fifo])).toBe("");
  });
});
