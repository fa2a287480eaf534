import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { execFileSync, spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError, createLogger } from "@pangea/kit";
import { GONE_VERSIONS_KEPT, ModelManager } from "../src/model/model-manager.js";
import { SLOT, SPEC, corrupt, idWords, writeModel, writeVersion } from "./support/versions.js";
import { denseParams } from "@pangea/model";

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

  it("a request that finds no version loaded is told why: none on disk yet, or the newest failure's reason", () => {
    const { base, m } = manager(1);
    m.scan();
    const why = () => { try { m.get("ctr"); return "served"; } catch (err) { return `${(err as { code: string }).code}: ${(err as Error).message}`; } };
    expect(why()).toBe(`SERVING_ERR_NOT_READY: model "ctr" has no version loaded yet (base path ${base} holds no numbered version)`);
    for (const v of [1, 2]) {
      writeVersion(base, v);
      corrupt(base, v);
    }
    m.scan();
    expect(why()).toMatch(new RegExp(`^SERVING_ERR_NOT_READY: model "ctr" has no version loaded \\(base path ${base}\\): version 2 failed to load: model version 2 at .*: slot-1\\.rows\\.f32 has 12 bytes, manifest says 24 \\(version 1 failed too\\); a version is tried again when its files change$`));
    writeVersion(base, 3);
    m.scan();
    expect(why()).toBe("served");
  });

  it("a pinned version stays loaded and served when newer ones push it past --keep-versions, until it is removed from disk", () => {
    const { base, m } = manager(2);
    writeVersion(base, 1);
    writeVersion(base, 2);
    m.scan();
    m.pin(1);
    writeVersion(base, 3);
    m.scan();
    expect(m.loadedVersions()).toEqual([1, 2, 3]);
    expect(m.get("ctr").version).toBe(1);
    expect(m.versions("ctr").filter((v) => v.pinned).map((v) => v.version)).toEqual([1]);
    writeVersion(base, 4);
    m.scan();
    expect(m.loadedVersions()).toEqual([1, 3, 4]);
    // Removed from disk: unloaded, and the newest is served again.
    rmSync(join(base, "1"), { recursive: true });
    m.scan();
    expect(m.loadedVersions()).toEqual([3, 4]);
    expect(m.get("ctr").version).toBe(4);
    expect(m.versions("ctr").some((v) => v.pinned)).toBe(false);
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

  it("a version copied to another number is refused with how to write that version", () => {
    const { base, m } = manager(2);
    writeVersion(base, 2);
    cpSync(join(base, "2"), join(base, "5"), { recursive: true });
    m.scan();
    expect(m.loadedVersions()).toEqual([2]);
    expect(m.versions("ctr", 5)[0]!.error).toMatch(new RegExp(`^model version 5 at ${join(base, "5")}: manifest says version 2, the directory 5: a version copied to another number keeps its own; remove ${join(base, "5")}, then write version 5 with pangea export (--checkpoint \\S+ --out ${base} )?--version 5`));
  });

  it("a version whose dense parameters are not this build's architecture's (renamed, reordered, reshaped, more or fewer) is refused naming the first that differs, not cut into the wrong tensors", () => {
    const { base, m } = manager(8);
    writeVersion(base, 1);
    const params = denseParams(SPEC).map((p) => ({ name: p.name, shape: [...p.shape] }));
    expect(params.length).toBeGreaterThan(1);
    // What an architecture whose params() changed since the export sees: the same dense.f32 (checksums match), listed otherwise.
    const listed = (v: number, list: unknown) => {
      const dir = writeVersion(base, v);
      const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Record<string, unknown>;
      writeFileSync(join(dir, "manifest.json"), JSON.stringify({ ...manifest, denseParams: list }));
    };
    const [a, b] = params as [{ name: string; shape: number[] }, { name: string; shape: number[] }];
    listed(2, [b, a, ...params.slice(2)]);
    listed(3, [{ ...a, name: "renamed.w" }, ...params.slice(1)]);
    listed(4, params.slice(0, -1));
    listed(5, [...params, { name: "extra.w", shape: [1, 1] }]);
    listed(6, [{ name: a.name, shape: [...a.shape].reverse().concat([1]) }, ...params.slice(1)]);
    listed(7, "none");
    m.scan();
    expect(m.loadedVersions()).toEqual([1]);
    const error = (v: number) => m.versions("ctr", v)[0]!.error.replace(/^model version \d+ at [^:]*: /, "");
    const shape = (s: number[]) => `[${s.join(", ")}]`;
    const last = params.at(-1)!;
    const tail = ": the architecture's definition changed since this version was exported; serve it with the build that exported it";
    expect([2, 3, 4, 5, 6, 7].map(error)).toEqual([
      `its dense parameter 0 is ${b.name} ${shape(b.shape)}, where this build's dlrm declares ${a.name} ${shape(a.shape)}${tail}`,
      `its dense parameter 0 is renamed.w ${shape(a.shape)}, where this build's dlrm declares ${a.name} ${shape(a.shape)}${tail}`,
      `it lists ${params.length - 1} dense parameters, this build's dlrm declares ${params.length} (the first it lacks: ${last.name} ${shape(last.shape)})${tail}`,
      `it lists ${params.length + 1} dense parameters, this build's dlrm declares ${params.length} (the first it has beyond them: extra.w [1, 1])${tail}`,
      `its dense parameter 0 is ${a.name} ${shape([...a.shape].reverse().concat([1]))}, where this build's dlrm declares ${a.name} ${shape(a.shape)}${tail}`,
      "its manifest's denseParams is no list of the dense parameters' names and shapes",
    ]);
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
    // END with an OK status, as TF Serving reports a version it unloaded: removing one is how an operator rolls back.
    expect(m.versions("ctr", 2)[0]).toEqual({ version: 2, state: "END", error: "" });
  });

  it("versions gone from disk are listed as END, the newest few of them (a long-lived server's exports do not pile up)", () => {
    const { base, m } = manager(1);
    for (let v = 1; v <= GONE_VERSIONS_KEPT + 5; v++) {
      writeVersion(base, v);
      m.scan();
      if (v > 1) rmSync(join(base, String(v - 1)), { recursive: true });
    }
    m.scan();
    const last = GONE_VERSIONS_KEPT + 5;
    expect(m.versions("ctr").map((s) => `${s.version}:${s.state}`)).toEqual([...Array.from({ length: GONE_VERSIONS_KEPT }, (_, i) => `${last - GONE_VERSIONS_KEPT + i}:END`), `${last}:AVAILABLE`]);
  });
});

describe("ModelManager: versions that are no model", () => {
  it("a FIFO or device for a file, or non-finite weights, is refused with its reason at once; the good version keeps serving", () => {
    const { base, m } = manager(2);
    writeVersion(base, 1);
    m.scan();
    // Read plainly, a FIFO blocked the process for good and /dev/zero filled its memory.
    writeVersion(base, 2);
    rmSync(join(base, "2", "manifest.json"));
    expect(spawnSync("mkfifo", [join(base, "2", "manifest.json")]).status).toBe(0);
    writeVersion(base, 3);
    rmSync(join(base, "3", "manifest.json"));
    symlinkSync("/dev/zero", join(base, "3", "manifest.json"));
    writeVersion(base, 4);
    rmSync(join(base, "4", `slot-${SLOT}.rows.f32`));
    expect(spawnSync("mkfifo", [join(base, "4", `slot-${SLOT}.rows.f32`)]).status).toBe(0);
    // Checksums that match weights that would make every answer NaN.
    writeVersion(base, 5, Number.NaN);
    const n = denseParams(SPEC).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
    writeModel(base, 6, { spec: SPEC, slotIds: [SLOT], dense: new Float32Array(n).fill(0.1), tables: [{ slot: SLOT, ids: Uint32Array.from([...idWords(1), ...idWords(2)]), rows: Float32Array.from([1, 1, 2, Number.POSITIVE_INFINITY]) }] });
    // A link loop for a version directory: named as such, not as a missing manifest.
    symlinkSync("7", join(base, "7"));
    const t = performance.now();
    m.scan();
    expect(performance.now() - t).toBeLessThan(5_000);
    expect(m.loadedVersions()).toEqual([1]);
    const error = (v: number) => m.versions("ctr", v)[0]!.error.replace(/^model version \d+ at [^:]*: /, "");
    expect([2, 3, 4, 5, 6, 7].map(error)).toEqual([
      "manifest.json is a FIFO, not a regular file",
      "manifest.json is a device, not a regular file",
      `slot-${SLOT}.rows.f32 is a FIFO, not a regular file`,
      "dense.f32 holds NaN at value 0; a version with non-finite weights would answer NaN",
      `slot-${SLOT}.rows.f32 holds Infinity in row 1; a version with non-finite weights would answer NaN`,
      "cannot read manifest.json (ELOOP)",
    ]);
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

  it("refuses a version directory given as the base path, naming its parent; warns when versions are one level down", () => {
    const { base } = manager(1);
    writeVersion(base, 3);
    const m = new ModelManager("ctr", join(base, "3"), 1, log);
    expect(() => m.start(60)).toThrow(`invalid --model-base-path: ${join(base, "3")} is a model version (it holds manifest.json); give the directory holding the numbered versions, ${base}`);
    const warned: string[] = [];
    const recording = { ...log, warn: (_o: unknown, msg: string) => warned.push(msg), child: () => recording } as unknown as typeof log;
    const top = mkdtempSync(join(tmpdir(), "pangea-models-"));
    mkdirSync(join(top, "ctr"));
    mkdirSync(join(top, "empty"));
    writeVersion(join(top, "ctr"), 1);
    const above = new ModelManager("ctr", top, 1, recording);
    above.start(60);
    above.stop();
    expect(warned).toEqual([`--model-base-path holds no numbered version, but its subdirectory ${join(top, "ctr")} does: give that as --model-base-path (serving waits for versions to appear where it was told)`]);
  });

  it("refuses a training checkpoint, or a job's directory of them, given as the base path, saying to export one", () => {
    const ckdir = mkdtempSync(join(tmpdir(), "pangea-ckpt-dir-"));
    const job = join(ckdir, "mt1");
    mkdirSync(job);
    for (const step of [100, 300]) {
      mkdirSync(join(job, `step-${step}`));
      writeFileSync(join(job, `step-${step}`, "manifest.json"), JSON.stringify({ format: "pangea-checkpoint", version: 2, step }));
    }
    const checkpoint = join(job, "step-300");
    expect(() => new ModelManager("ctr", checkpoint, 1, log).start(60)).toThrow(`invalid --model-base-path: ${checkpoint} is a training checkpoint, not an exported model; pangea export --checkpoint ${checkpoint} --out DIR writes a model version from it into DIR; give DIR`);
    expect(() => new ModelManager("ctr", job, 1, log).start(60)).toThrow(`invalid --model-base-path: ${job} is a job's directory of training checkpoints (step-100, step-300), not of model versions; pangea export --checkpoint ${checkpoint} --out DIR writes a model version from it into DIR; give DIR`);
    // The --checkpoint-dir above it, and a job's directory with only the orchestrator's lock so far.
    expect(() => new ModelManager("ctr", ckdir, 1, log).start(60)).toThrow(`invalid --model-base-path: ${ckdir} is a --checkpoint-dir (it holds job mt1's checkpoints), not a directory of model versions; pangea export --checkpoint ${join(job, "step-N")} --out DIR writes a model version from it into DIR; give DIR`);
    const locked = mkdtempSync(join(tmpdir(), "pangea-ckpt-locked-"));
    writeFileSync(join(locked, "orchestrator.lock"), "{}");
    expect(() => new ModelManager("ctr", locked, 1, log).start(60)).toThrow(`invalid --model-base-path: ${locked} is a job's directory of training checkpoints (none written yet), not of model versions; pangea export --checkpoint ${join(locked, "step-N")} --out DIR writes a model version from it into DIR; give DIR`);
  });

  it("looks at a manifest.json that is a FIFO or /dev/zero without waiting or reading without end", () => {
    const base = mkdtempSync(join(tmpdir(), "pangea-odd-manifest-"));
    mkdirSync(join(base, "step-5"));
    symlinkSync("/dev/zero", join(base, "step-5", "manifest.json"));
    mkdirSync(join(base, "fifo"));
    execFileSync("mkfifo", [join(base, "fifo", "manifest.json")]);
    for (const dir of [join(base, "step-5"), join(base, "fifo")]) {
      const started = Date.now();
      // Not a checkpoint (its manifest cannot be read), so refused as what it holds: a manifest.json, as a version would.
      expect(() => new ModelManager("ctr", dir, 1, log).start(60)).toThrow("is a model version (it holds manifest.json)");
      expect(Date.now() - started).toBeLessThan(2_000);
    }
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

  it("a version that failed to load and was then removed is END with no error, not its old one", () => {
    const { base, m } = manager(1);
    writeVersion(base, 1);
    writeVersion(base, 2);
    corrupt(base, 2);
    m.scan();
    expect(m.versions("ctr", 2)[0]!.error).toMatch(/manifest says/);
    rmSync(join(base, "2"), { recursive: true });
    m.scan();
    expect(m.versions("ctr", 2)[0]).toMatchObject({ state: "END", error: "" });
  });
});
