import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { UsageError, valueSnippet, type Logger } from "@pangea/kit";
import { checkpointsIn, isCheckpoint, isJobDirectory, jobDirectoryIn, type TaskSpec } from "@pangea/model";
import { ServingErrors } from "../errors.js";
import { Servable, type VersionSource } from "./servable.js";

export type VersionState = "LOADING" | "AVAILABLE" | "END";

/** How many versions no longer on disk the status still lists (END). */
export const GONE_VERSIONS_KEPT = 8;

export interface VersionStatus {
  version: number;
  state: VersionState;
  /** Why a version could not be loaded (state END), empty otherwise. */
  error: string;
  /** A loaded version's tasks, in output order (from its manifest's model spec). */
  tasks?: TaskSpec[];
  /** Where a loaded version came from (its manifest's job, step, checkpoint), if its manifest says. */
  source?: VersionSource;
  /** The version `pin` serves by default (POST :pin), while it is. */
  pinned?: boolean;
  /** What parameter sync changed in a loaded version since its load (in memory only: another load starts from its files). */
  synced?: { rows: number; tombstones: number; dense: number; lastAt: number; sender: string };
}

/**
 * The versions of one model: watches its base path, loads each new numbered
 * version (checked) while the current one keeps serving, then switches
 * requests to it in one assignment, so a swap fails no request. The newest
 * `keep` versions that load stay loaded (older ones are unloaded; one that
 * fails is skipped and retried when its files change); a version removed
 * from disk is unloaded, which is how an operator rolls back; `pin` serves a
 * chosen loaded version instead of the newest, and keeps it loaded (beyond
 * `keep`) while it is on disk.
 */
export class ModelManager {
  private readonly loaded = new Map<number, Servable>();
  private readonly status = new Map<number, VersionStatus>();
  /** Versions that failed to load, with the stamp of their files then (see filesStamp). */
  private readonly failed = new Map<number, string>();
  /** ParameterSync updates refused (non-finite, mis-shaped or from another model); none of such an update is applied. */
  syncRefused = 0;
  /** ParameterSync updates ignored as not newer than one already applied from their sender run (replays, late retries). */
  syncIgnored = 0;
  private pinned: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Called after each version change (load, unload), e.g. to re-point parameter sync. */
  onChange: () => void = () => {};
  /** Why the base path could not be listed at the last scan ("" when it could). */
  private unreadable = "";

  constructor(
    readonly name: string,
    readonly basePath: string,
    private readonly keep: number,
    private readonly log: Logger,
  ) {}

  /** Throws a UsageError when the base path is there but not a directory; warns when it is not there yet (versions may come). */
  start(pollSeconds: number): void {
    if (!existsSync(this.basePath)) this.log.warn({ basePath: this.basePath }, "--model-base-path does not exist (yet); serving waits for versions to appear there");
    else if (!statSync(this.basePath).isDirectory()) throw new UsageError(`invalid --model-base-path: ${this.basePath} is not a directory (expected the directory pangea export writes numbered versions to)`);
    else this.checkLooksLikeBase();
    this.scan();
    this.timer = setInterval(() => this.scan(), pollSeconds * 1000);
    this.timer.unref();
  }

  /**
   * A version directory given as the base path (it holds a manifest.json)
   * would serve nothing for good: refused, naming its parent. A base path
   * with no numbered version but subdirectories holding some is likely one
   * level too high: warned, naming them.
   */
  private checkLooksLikeBase(): void {
    const listed = versionsIn(this.basePath);
    if (!listed.ok || listed.versions.length > 0) return;
    const exportHint = (checkpoint: string) => `pangea export --checkpoint ${checkpoint} --out DIR writes a model version from it into DIR; give DIR`;
    const refuse = (what: string) => new UsageError(`invalid --model-base-path: ${this.basePath} is ${what}`);
    if (isCheckpoint(this.basePath)) throw refuse(`a training checkpoint, not an exported model; ${exportHint(this.basePath)}`);
    if (existsSync(join(this.basePath, "manifest.json"))) {
      throw refuse(`a model version (it holds manifest.json); give the directory holding the numbered versions, ${dirname(resolve(this.basePath))}`);
    }
    if (isJobDirectory(this.basePath)) {
      const steps = checkpointsIn(this.basePath);
      throw refuse(`a job's directory of training checkpoints (${steps.length ? steps.slice(-2).join(", ") : "none written yet"}), not of model versions; ${exportHint(join(this.basePath, steps.at(-1) ?? "step-N"))}`);
    }
    const job = jobDirectoryIn(this.basePath);
    if (job) throw refuse(`a --checkpoint-dir (it holds job ${job}'s checkpoints), not a directory of model versions; ${exportHint(join(this.basePath, job, "step-N"))}`);
    let below: string[] = [];
    try {
      below = readdirSync(this.basePath, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => join(this.basePath, e.name))
        .filter((d) => { const v = versionsIn(d); return v.ok && v.versions.length > 0; });
    } catch {
      return;
    }
    if (below.length) this.log.warn({ basePath: this.basePath, withVersions: below.slice(0, 5) }, `--model-base-path holds no numbered version, but ${below.length === 1 ? "its subdirectory" : "subdirectories"} ${below.slice(0, 3).join(", ")} ${below.length === 1 ? "does" : "do"}: give that as --model-base-path (serving waits for versions to appear where it was told)`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /**
   * Serves the newest `keep` versions that load. Walking down from the newest
   * version on disk, each is kept if loaded, loaded if new, and skipped if it
   * failed before and its files have not changed since (a version that failed
   * is tried again once its manifest or directory changes: mtime or size).
   * Loaded versions outside that set, or gone from disk, are unloaded; so a
   * newer version that fails to load never pushes out the last good one.
   */
  scan(): void {
    const onDisk = versionsIn(this.basePath);
    if (!onDisk.ok) {
      // Unreadable for now (a file in its place, permissions): what is loaded stays served; said once per reason.
      if (onDisk.why !== this.unreadable) this.log.error({ basePath: this.basePath, err: onDisk.why }, "cannot list --model-base-path; keeping the versions loaded");
      this.unreadable = onDisk.why;
      return;
    }
    this.unreadable = "";
    const serve = new Set<number>();
    let changed = false;
    for (const v of onDisk.versions) {
      if (serve.size >= this.keep) break;
      if (this.loaded.has(v)) {
        serve.add(v);
        continue;
      }
      const dir = join(this.basePath, String(v));
      const stamp = filesStamp(dir);
      const failed = this.failed.get(v);
      if (failed !== undefined && failed === stamp) continue;
      this.status.set(v, { version: v, state: "LOADING", error: "" });
      try {
        const started = Date.now();
        const s = Servable.load(dir, v);
        this.loaded.set(v, s);
        this.failed.delete(v);
        this.status.set(v, { version: v, state: "AVAILABLE", error: "", tasks: s.tasks, ...(s.source ? { source: s.source } : {}) });
        this.log.info({ model: this.name, version: v, job: s.source?.jobId, step: s.source?.step, rows: s.rowCount, ms: Date.now() - started, retried: failed !== undefined }, "model version loaded");
        serve.add(v);
        changed = true;
      } catch (err) {
        this.failed.set(v, stamp);
        this.status.set(v, { version: v, state: "END", error: (err as Error).message });
        this.log.error({ model: this.name, version: v, err: (err as Error).message }, "model version failed to load; it is tried again when its files change");
      }
    }
    // A pinned version stays loaded while it is on disk, beyond --keep-versions: newer exports must not undo a rollback.
    if (this.pinned !== null && this.loaded.has(this.pinned) && onDisk.versions.includes(this.pinned)) serve.add(this.pinned);
    for (const v of [...this.loaded.keys()]) {
      if (!serve.has(v)) {
        this.loaded.delete(v);
        // Unloaded beyond --keep-versions, or removed by the operator (a rollback): TF Serving's END with an OK status.
        this.status.set(v, { version: v, state: "END", error: "" });
        if (this.pinned === v) {
          this.pinned = null;
          this.log.warn({ model: this.name, version: v }, "the pinned version was removed from the base path; serving the newest loaded version again");
        }
        this.log.info({ model: this.name, version: v }, "model version unloaded");
        changed = true;
      }
    }
    // A version that failed and is gone: no longer an error to report.
    for (const v of [...this.failed.keys()]) {
      if (onDisk.versions.includes(v)) continue;
      this.failed.delete(v);
      this.status.set(v, { version: v, state: "END", error: "" });
    }
    // Versions gone from disk are remembered as END, the newest few of them: a long-lived server's exports come and go.
    const gone = [...this.status.keys()].filter((v) => !onDisk.versions.includes(v) && !this.loaded.has(v)).sort((a, b) => b - a);
    for (const v of gone.slice(GONE_VERSIONS_KEPT)) this.status.delete(v);
    if (changed) this.onChange();
  }

  /** The version a request gets: the one it names, else the pinned one, else the newest loaded. */
  get(name: string, version?: number): Servable {
    if (name !== this.name) throw ServingErrors.create("SERVING_ERR_UNKNOWN_MODEL", `no model named ${valueSnippet(name)}; this server serves "${this.name}"`);
    if (version !== undefined) {
      const s = this.loaded.get(version);
      if (!s) throw ServingErrors.create("SERVING_ERR_UNKNOWN_MODEL", `model "${name}" has no version ${version} loaded (loaded: ${this.versionsText()})`);
      return s;
    }
    const current = this.current();
    if (!current) throw ServingErrors.create("SERVING_ERR_NOT_READY", `model "${name}" has no version loaded ${this.whyNoneLoaded()}`);
    return current;
  }

  current(): Servable | null {
    if (this.pinned !== null && this.loaded.has(this.pinned)) return this.loaded.get(this.pinned)!;
    const newest = Math.max(...this.loaded.keys());
    return Number.isFinite(newest) ? this.loaded.get(newest)! : null;
  }

  /** Serves `version` by default (null = the newest again). */
  pin(version: number | null): void {
    if (version !== null && !this.loaded.has(version)) {
      throw ServingErrors.create("SERVING_ERR_UNKNOWN_MODEL", `cannot pin version ${version}: not loaded (loaded: ${this.versionsText()})`);
    }
    this.pinned = version;
    this.log.info({ model: this.name, pinned: version }, version === null ? "serving the newest version" : "serving a pinned version");
    this.onChange();
  }

  versions(name: string, version?: number): VersionStatus[] {
    if (name !== this.name) throw ServingErrors.create("SERVING_ERR_UNKNOWN_MODEL", `no model named ${valueSnippet(name)}; this server serves "${this.name}"`);
    const withSync = (st: VersionStatus): VersionStatus => {
      const s = this.loaded.get(st.version);
      const pinned = st.version === this.pinned && s ? { pinned: true } : {};
      return s && s.synced.lastAt > 0 ? { ...st, ...pinned, synced: { ...s.synced } } : { ...st, ...pinned };
    };
    const all = [...this.status.values()].sort((a, b) => a.version - b.version);
    if (version === undefined) return all.map(withSync);
    const one = this.status.get(version);
    if (!one) throw ServingErrors.create("SERVING_ERR_UNKNOWN_MODEL", `model "${name}" has no version ${version}`);
    return [withSync(one)];
  }

  /** The loaded versions' Servables (forward threads keep these and drop the rest). */
  servables(): Servable[] {
    return [...this.loaded.values()];
  }

  loadedVersions(): number[] {
    return [...this.loaded.keys()].sort((a, b) => a - b);
  }

  /** Why nothing is served, for a request that finds no version: a version that failed to load says why (an operator sees it from the client). */
  private whyNoneLoaded(): string {
    if (this.unreadable) return `(base path ${this.basePath} cannot be listed: ${this.unreadable})`;
    const failed = [...this.failed.keys()].sort((a, b) => b - a);
    if (failed.length === 0) return `yet (base path ${this.basePath} holds no numbered version)`;
    const newest = failed[0]!;
    const others = failed.length > 1 ? ` (version${failed.length > 2 ? "s" : ""} ${failed.slice(1).join(", ")} failed too)` : "";
    return `(base path ${this.basePath}): version ${newest} failed to load: ${this.status.get(newest)?.error ?? "unknown"}${others}; a version is tried again when its files change`;
  }

  private versionsText(): string {
    return this.loadedVersions().join(", ") || "none";
  }
}

/**
 * What identifies a version's files for retrying a failed load: the
 * directory's mtime (files added, removed or renamed in it) and each file's
 * name, mtime and size (rewritten in place, the manifest among them).
 */
function filesStamp(dir: string): string {
  try {
    const parts = [String(statSync(dir).mtimeMs)];
    for (const name of readdirSync(dir).sort()) {
      try {
        const s = statSync(join(dir, name));
        parts.push(`${name}:${s.mtimeMs}:${s.size}`);
      } catch {
        parts.push(`${name}:-`);
      }
    }
    return parts.join("|");
  } catch {
    return "-";
  }
}

/** The numbered versions under `basePath`, newest first (none while it does not exist), or why it cannot be listed. */
function versionsIn(basePath: string): { ok: true; versions: number[] } | { ok: false; why: string } {
  try {
    const versions = readdirSync(basePath)
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .sort((a, b) => b - a);
    return { ok: true, versions };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { ok: true, versions: [] };
    return { ok: false, why: (err as Error).message };
  }
}

