import { mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeDirs, unwritableDirReason, unwritableFileReason } from "../src/directories.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pangea-dirs-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const codeOf = (fn: () => void) => {
  try {
    fn();
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
  return "no error";
};

describe("makeDirs", () => {
  it("makes every missing component, with the mode asked, and is a no-op when it exists", () => {
    const deep = join(dir, "a", "b", "c");
    makeDirs(deep, 0o700);
    expect(statSync(deep).isDirectory()).toBe(true);
    expect(statSync(join(dir, "a")).mode & 0o777).toBe(0o700);
    makeDirs(deep);
    expect(readdirSync(join(dir, "a", "b"))).toEqual(["c"]);
  });

  it("a file in the path is ENOTDIR, as Node's own", () => {
    writeFileSync(join(dir, "f"), "x");
    expect(codeOf(() => makeDirs(join(dir, "f", "x")))).toBe("ENOTDIR");
    expect(codeOf(() => makeDirs(join(dir, "f")))).toBe("ENOTDIR");
  });

  // Node 20's recursive mkdirSync never returns here: /proc answers ENOENT under a parent that exists.
  it.runIf(existsSync("/proc/self"))("fails at once under /proc instead of spinning", () => {
    const t = performance.now();
    expect(codeOf(() => makeDirs("/proc/pangea-nope/x"))).toBe("ENOENT");
    expect(performance.now() - t).toBeLessThan(1000);
  });
});

describe("unwritableDirReason", () => {
  it("null for a directory, or a path that can be made under one; nothing is left behind", () => {
    expect(unwritableDirReason(dir)).toBeNull();
    expect(unwritableDirReason(join(dir, "new", "deeper"))).toBeNull();
    expect(readdirSync(dir)).toEqual([]);
  });

  it("names a file given as the directory, or one in its path", () => {
    writeFileSync(join(dir, "f"), "x");
    expect(unwritableDirReason(join(dir, "f"))).toBe(`${join(dir, "f")} is not a directory`);
    expect(unwritableDirReason(join(dir, "f", "x"))).toBe(`${join(dir, "f")} (in ${join(dir, "f", "x")}'s path) is not a directory`);
  });

  // Root passes access(2) there; only making an entry tells.
  it.runIf(existsSync("/proc/self"))("refuses /proc and /sys, where nothing can be made", () => {
    expect(unwritableDirReason("/proc/pangea-nope")).toBe("/proc, where /proc/pangea-nope would be made, is not writable (ENOENT)");
    expect(unwritableDirReason("/proc/self")).toMatch(/^\/proc\/self is not writable \(E[A-Z]+\)$/);
    if (existsSync("/sys/kernel")) expect(unwritableDirReason("/sys/pangea-nope")).toMatch(/^\/sys, where \/sys\/pangea-nope would be made, is not writable \(E[A-Z]+\)$/);
  });
});

describe("a symbolic link to nothing", () => {
  it("is named, not walked past: mkdir through it would fail at the end", () => {
    const link = join(dir, "dangling");
    symlinkSync(join(dir, "nowhere", "deeper"), link);
    const why = `${link} is a symbolic link to ${join(dir, "nowhere", "deeper")}, which does not exist`;
    expect(unwritableDirReason(link)).toBe(why);
    expect(unwritableDirReason(join(link, "x"))).toBe(why);
    expect(() => makeDirs(join(link, "x"))).toThrow(why);
    expect(readdirSync(dir)).toEqual(["dangling"]);
  });
});

describe("unwritableFileReason", () => {
  it("null for a new file (under directories still to be made) or a writable one; nothing is made", () => {
    expect(unwritableFileReason(join(dir, "new", "deeper", "out.tsv"))).toBeNull();
    writeFileSync(join(dir, "old.tsv"), "x");
    expect(unwritableFileReason(join(dir, "old.tsv"))).toBeNull();
    expect(readdirSync(dir)).toEqual(["old.tsv"]);
  });

  it("names a directory, a link to nothing, and a directory part that is a file, each reason starting with the path", () => {
    expect(unwritableFileReason(dir)).toBe(`${dir} is a directory; give a file path`);
    const link = join(dir, "dangling");
    symlinkSync(join(dir, "nowhere"), link);
    expect(unwritableFileReason(link)).toBe(`${link} is a symbolic link to ${join(dir, "nowhere")}, which does not exist`);
    writeFileSync(join(dir, "f"), "x");
    expect(unwritableFileReason(join(dir, "f", "out.tsv"))).toBe(`${join(dir, "f", "out.tsv")}: ${join(dir, "f")} is not a directory`);
    expect(unwritableFileReason(join(link, "out.tsv"))).toBe(`${join(link, "out.tsv")}: ${link} is a symbolic link to ${join(dir, "nowhere")}, which does not exist`);
  });

  // Root may write any file; only others are refused by the mode.
  it.runIf(process.getuid?.() !== 0)("names a file without write access", () => {
    writeFileSync(join(dir, "ro.tsv"), "x", { mode: 0o444 });
    expect(unwritableFileReason(join(dir, "ro.tsv"))).toBe(`${join(dir, "ro.tsv")} is not writable (EACCES)`);
  });

  it.runIf(existsSync("/proc/self"))("refuses a file under /proc", () => {
    expect(unwritableFileReason("/proc/pangea-nope.tsv")).toBe("/proc/pangea-nope.tsv: /proc is not writable (ENOENT)");
  });
});
