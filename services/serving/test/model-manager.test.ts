import { mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError, createLogger } from "@pangea/kit";
import { ModelManager } from "../src/model/model-manager.js";
import { corrupt, writeVersion } from "./support/versions.js";

const log = createLogger("serving-test", "silent");

function manager(keep: number) {
  const base = mkdtempSync(join(tmpdir(), "pangea-versions-"));
  return { base, m: new ModelManager("ctr", base, keep, log) };
}

const states = (m: ModelManager) => m.versions("ctr").map((s) => `${s.version}:${s.state}`);

describe("ModelManager: --keep-versions counts versions that load", () => {
  it("two corrupt newest versions do not unload the last good one (keep 2)", () => {
    const { base, m } = manager(2);
    writeVersion(base, 1);
    writeVersion(base, 2);
    m.scan();
    expect(m.loadedVersions()).toEqual([1, 2]);
    for (const v of [3, 4]) {
      writeVersion(base, v);
      corrupt(base, v);
    }
    m.scan();
    expect(m.loadedVersions()).toEqual([1, 2]);
    expect(m.current()!.version).toBe(2);
    expect(states(m)).toEqual(["1:AVAILABLE", "2:AVAILABLE", "3:END", "4:END"]);
    expect(m.versions("ctr", 4)[0]!.error).toMatch(/^model version 4 at .*: slot-1\.rows\.f32 has 12 bytes, manifest says 24$/);
  });

  it("serves the newest loadable version when the newest on disk are corrupt at start (keep 1)", () => {
    const { base, m } = manager(1);
    writeVersion(base, 1);
    writeVersion(base, 2);
    corrupt(base, 2);
    writeVersion(base, 3);
    corrupt(base, 3);
    m.scan();
    expect(m.loadedVersions()).toEqual([1]);
    expect(m.get("ctr").version).toBe(1);
  });

  it("a good newer version still replaces older ones beyond keep", () => {
    const { base, m } = manager(1);
    writeVersion(base, 1);
    m.scan();
    writeVersion(base, 2);
    m.scan();
    expect(m.loadedVersions()).toEqual([2]);
    expect(states(m)).toEqual(["1:END", "2:AVAILABLE"]);
  });

  it("a failed version is not reloaded while its files are unchanged, and is retried once they change", () => {
    const { base, m } = manager(1);
    writeVersion(base, 1);
    writeVersion(base, 2);
    corrupt(base, 2);
    let loads = 0;
    m.onChange = () => loads++;
    m.scan();
    expect(m.loadedVersions()).toEqual([1]);
    const error = m.versions("ctr", 2)[0]!.error;
    m.scan();
    m.scan();
    expect(m.versions("ctr", 2)[0]).toEqual({ version: 2, state: "END", error });
    expect(loads).toBe(1);
    // The operator fixes version 2 (rewrites it in place); the next scan loads it and drops version 1.
    writeVersion(base, 2, 0.2);
    const later = new Date(Date.now() + 5_000);
    utimesSync(join(base, "2"), later, later);
    m.scan();
    expect(m.loadedVersions()).toEqual([2]);
    expect(m.current()!.dense[0]![0]).toBeCloseTo(0.2);
  });

  it("a version removed from disk is unloaded, and the next loadable one serves", () => {
    const { base, m } = manager(1);
    writeVersion(base, 1);
    writeVersion(base, 2);
    m.scan();
    expect(m.loadedVersions()).toEqual([2]);
    rmSync(join(base, "2"), { recursive: true });
    m.scan();
    expect(m.loadedVersions()).toEqual([1]);
    expect(m.versions("ctr", 2)[0]!.error).toBe("removed from the base path");
  });
});

describe("ModelManager: the base path itself", () => {
  it("refuses a file given as --model-base-path at start, one line, before anything is served", () => {
    const { base } = manager(1);
    const file = join(base, "not-a-dir");
    writeFileSync(file, "x");
    const m = new ModelManager("ctr", file, 1, log);
    expect(() => m.start(60)).toThrow(UsageError);
    expect(() => m.start(60)).toThrow(`invalid --model-base-path: ${file} is not a directory (expected the directory pangea export writes numbered versions to)`);
  });

  it("keeps serving what it loaded while the base path cannot be listed, and loads again once it can", () => {
    const { base, m } = manager(1);
    writeVersion(base, 1);
    m.scan();
    const aside = `${base}.aside`;
    renameSync(base, aside);
    writeFileSync(base, "a file where the directory was");
    m.scan();
    expect(m.loadedVersions()).toEqual([1]);
    rmSync(base);
    renameSync(aside, base);
    writeVersion(base, 2);
    m.scan();
    expect(m.loadedVersions()).toEqual([2]);
  });

  it("a version that failed to load and was then removed says so, not its old error", () => {
    const { base, m } = manager(1);
    writeVersion(base, 1);
    writeVersion(base, 2);
    corrupt(base, 2);
    m.scan();
    expect(m.versions("ctr", 2)[0]!.error).toMatch(/manifest says/);
    rmSync(join(base, "2"), { recursive: true });
    m.scan();
    expect(m.versions("ctr", 2)[0]).toMatchObject({ state: "END", error: "removed from the base path" });
  });
});
