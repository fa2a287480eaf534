import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

/**
 * make docker-up's checks of its settings, which come before the engine is
 * asked anything: a value the services would refuse after a minute's build
 * is refused at once in one line, and is not remembered for the next start.
 * DOCKER_HOST points at no engine, so a start that passes the checks stops
 * at the engine's line and nothing is built.
 */
const ROOT = join(import.meta.dirname, "../..");
const PROJECT = `pangea-settings-${process.pid}`;
const SETTINGS = join(ROOT, ".pangea/docker", `${PROJECT}.settings`);
const LOCK = join(ROOT, ".pangea/docker", `${PROJECT}.lock`);
const haveCompose = spawnSync("docker-compose", ["version"]).status === 0 || spawnSync("docker", ["compose", "version"]).status === 0;

function up(env: Record<string, string>): { code: number | null; err: string } {
  const r = spawnSync("bash", ["scripts/docker-cluster.sh", "up"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/tmp", COMPOSE_PROJECT: PROJECT, DOCKER_HOST: "unix:///nonexistent/docker.sock", ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, err: r.stderr.trim() };
}

afterAll(() => {
  rmSync(SETTINGS, { force: true });
  rmSync(LOCK, { recursive: true, force: true });
});

describe.runIf(haveCompose)("make docker-up's settings", () => {
  it.each([
    [{ COMPOSE_PROJECT: "H130 BAD" }, "COMPOSE_PROJECT: expected lowercase letters, digits, '_' and '-', starting with a letter or digit, got 'H130 BAD'"],
    [{ COMPOSE_PROJECT: "../up" }, "COMPOSE_PROJECT: expected lowercase letters, digits, '_' and '-', starting with a letter or digit, got '../up'"],
    [{ STEPS: "abc" }, "STEPS: expected a whole number from 1 to 999999999, got 'abc'"],
    [{ TRAINERS: "-3" }, "TRAINERS: expected a whole number from 1 to 999999999, got '-3'"],
    [{ TRAINERS: "0" }, "TRAINERS: expected a whole number from 1 to 999999999, got '0'"],
    [{ BATCHES_PER_STEP: "4097" }, "BATCHES_PER_STEP: expected a whole number from 0 (one batch per trainer) to 4096, got '4097'"],
    [{ BATCHES_PER_STEP: "two" }, "BATCHES_PER_STEP: expected a whole number from 0 (one batch per trainer) to 4096, got 'two'"],
    [{ PROMETHEUS_PORT: "abc" }, "PROMETHEUS_PORT: expected a port number from 1 to 65535, got 'abc'"],
    [{ SERVING_REST_PORT: "8501x" }, "SERVING_REST_PORT: expected a port number from 1 to 65535, got '8501x'"],
    [{ PROMETHEUS_PORT: "99999" }, "PROMETHEUS_PORT: expected a port number from 1 to 65535, got '99999'"],
    [{ DASHBOARD_PORT: "50051" }, "DASHBOARD_PORT and ORCHESTRATOR_PORT are both port 50051; give each its own"],
    [{ PANGEA_BIND: "garbage" }, "PANGEA_BIND: expected an IP address of this host to publish the ports on (e.g. 127.0.0.1 or 0.0.0.0), got 'garbage'"],
    [{ COMPRESSION: "lz4" }, "COMPRESSION: expected auto, none, gzip, zlib, snappy or zstd, got 'lz4'"],
    [{ FRAMING: "csv" }, "FRAMING: expected pb or tfrecord, got 'csv'"],
    [{ SORT_ID: "maybe" }, "SORT_ID: expected auto, true or false, got 'maybe'"],
    [{ FORMAT: "json" }, "FORMAT: expected criteo, instance, example, examplebatch or parquet, got 'json'"],
    [{ FORMAT: "example examplebatch" }, "FORMAT: expected criteo, instance, example, examplebatch or parquet, got 'example examplebatch'"],
    [{ DATA: "/etc/hostname", FORMAT: "parquet" }, "FORMAT=parquet needs FEATURE_LIST: the feature list the records are read with (see the README's Data formats)"],
    // Read as compute reads it (this checkout is built), not found only after the images' build.
    [{ DATA: "/etc/hostname", FORMAT: "parquet", FEATURE_LIST: "/etc/hostname" }, /^FEATURE_LIST: feature list \/etc\/hostname:1: expected feature_name=\.\.\. slot=<integer>, got '.*'$/],
  ])("%j is refused in one line, before the engine, and not remembered", (env, line) => {
    const r = up(env);
    expect(r.code).toBe(1);
    if (typeof line === "string") expect(r.err).toBe(`make docker-up: ${line}`);
    else expect(r.err.replace(/^make docker-up: /, "")).toMatch(line);
    expect(existsSync(SETTINGS)).toBe(false);
  });

  it("a feature list compute reads passes the check (to the engine's line here)", () => {
    const list = join(ROOT, ".pangea/docker", `${PROJECT}.feature-list.conf`);
    mkdirSync(join(ROOT, ".pangea/docker"), { recursive: true });
    writeFileSync(list, "feature_name=user_id slot=1\nfeature_name=item_id slot=2\n");
    try {
      const r = up({ DATA: "/etc/hostname", FORMAT: "parquet", FEATURE_LIST: list });
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^make docker-up: no Docker engine answers/);
    } finally {
      rmSync(list, { force: true });
    }
  });

  it("one start of a project at a time: a live holder's lock refuses the second, a dead one's is taken over", () => {
    mkdirSync(LOCK, { recursive: true });
    writeFileSync(join(LOCK, "pid"), String(process.pid));
    const held = up({});
    expect([held.code, held.err]).toEqual([1, `make docker-up: another make docker-up or docker-down of project '${PROJECT}' is running (pid ${process.pid}); wait for it to end, or give this one another COMPOSE_PROJECT`]);
    // A holder killed -9 left its lock: the next start goes past it (to the missing engine here) and removes it when it ends.
    const dead = spawnSync("true").pid!;
    writeFileSync(join(LOCK, "pid"), String(dead));
    const after = up({});
    expect(after.code).toBe(1);
    expect(after.err).toMatch(/^make docker-up: no Docker engine answers \(.+\): start it/);
    expect(existsSync(LOCK)).toBe(false);
  });
});
