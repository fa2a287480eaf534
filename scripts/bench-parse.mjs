#!/usr/bin/env node
// `make bench` (and alone: node scripts/bench-parse.mjs [RECORDS]): compute's
// start-up pass (read, parse and hash a file into the record cache) per
// format, with 1 parse thread and with the default (the machine's cores),
// next to the machine's sequential read speed for the same file (fs reads of
// 8 MiB; the file was just written, so this is the page cache's speed, the
// upper limit) and, for gzip, the decompress-only speed; then compute's rate
// of serving batches from the cache (read -> batch -> serialize), and both
// against what a 2-trainer job consumes; and the pass's records per
// CPU-second (all threads), which other work on the machine skews less.
// Figures and ratios from one invocation; nothing is asserted. Each pass
// runs in a fresh process.
import { execFileSync } from "node:child_process";
import { closeSync, createReadStream, createWriteStream, mkdtempSync, openSync, readSync, rmSync, statSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "packages/cli/dist/main.js");
const records = Number(process.argv[2] ?? 300_000);
const cores = availableParallelism();
const tmp = mkdtempSync(join(tmpdir(), "pangea-bench-parse-"));
const node = (args, opts = {}) => execFileSync(process.execPath, args, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });

/** MB/s of reading `path` front to back in 8 MiB blocks. */
function readSpeed(path) {
  const buf = Buffer.allocUnsafe(8 << 20);
  const fd = openSync(path, "r");
  const t = performance.now();
  let total = 0;
  for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) total += n;
  closeSync(fd);
  return total / 2 ** 20 / ((performance.now() - t) / 1000);
}

/** Seconds to gunzip `path` as compute does (zlib on libuv's threads), output discarded. */
async function gunzipSeconds(path) {
  const t = performance.now();
  const z = zlib.createGunzip();
  const done = pipeline(createReadStream(path, { highWaterMark: 1 << 16 }), z);
  z.on("data", () => {});
  await done;
  return (performance.now() - t) / 1000;
}

/** One pass in a fresh process: { passRecordsPerSec, serveRecordsPerSec, records }. */
function pass(format, file, threads, featureList) {
  const cacheDir = join(tmp, `cache-${format}-${threads}-${Math.random().toString(36).slice(2)}`);
  const out = node([join(root, "services/compute/dist/bench/parse-pass.js"), "--format", format, "--file", file, "--threads", String(threads), "--cache-dir", cacheDir, ...(featureList ? ["--feature-list", featureList] : [])]);
  rmSync(cacheDir, { recursive: true, force: true });
  return JSON.parse(out.trim().split("\n").pop());
}

try {
  const load = loadavg()[0];
  const tsv = join(tmp, "criteo.tsv");
  node([cli, "gen-data", "--format", "criteo", "--records", String(records), "--out", tsv], { stdio: ["ignore", "ignore", "inherit"] });
  const gz = `${tsv}.gz`;
  await pipeline(createReadStream(tsv), zlib.createGzip(), createWriteStream(gz));
  const pb = join(tmp, "instance.pb");
  node([cli, "gen-data", "--format", "instance", "--records", String(records), "--out", pb, "--feature-list-out", join(tmp, "instance.json")], { stdio: ["ignore", "ignore", "inherit"] });
  const pq = join(tmp, "criteo.parquet");
  node([cli, "gen-data", "--format", "parquet", "--records", String(records), "--out", pq, "--feature-list-out", join(tmp, "parquet.json")], { stdio: ["ignore", "ignore", "inherit"] });

  const formats = [
    { name: "Criteo TSV", format: "criteo", file: tsv },
    { name: "Criteo TSV gzip", format: "criteo", file: gz },
    { name: "Monolith Instance pb", format: "instance", file: pb, list: join(tmp, "instance.json") },
    { name: "Parquet", format: "parquet", file: pq, list: join(tmp, "parquet.json") },
  ];
  const rows = [];
  for (const f of formats) {
    const mb = statSync(f.file).size / 2 ** 20;
    const read = readSpeed(f.file);
    const one = pass(f.format, f.file, 1, f.list);
    const many = cores > 1 ? pass(f.format, f.file, cores, f.list) : one;
    // Records/s the read alone would allow: the file's records at its read speed.
    const perMb = one.records / mb;
    const row = { ...f, mb, readRecordsPerSec: read * perMb, one, many };
    if (f.file === gz) row.gunzipRecordsPerSec = one.records / (await gunzipSeconds(gz));
    rows.push(row);
  }

  // What a 2-trainer job consumes: a short job on the TSV (its cache written first, so the job times training only).
  const steps = 40;
  const job = JSON.parse(
    node([cli, "run", "--data", tsv, "--cache-dir", join(tmp, "job-cache"), "--trainers", "2", "--batch-size", "1024", "--steps", String(steps), "--json", "--log-dir", join(tmp, "logs"), "--checkpoint-dir", join(tmp, "ckpt")], { stdio: ["ignore", "pipe", "ignore"] })
      .trim()
      .split("\n")
      .pop(),
  );
  const consumption = Number(job.samplesPerSecond);

  const k = (v) => `${(v / 1000).toFixed(0).padStart(6)}k`;
  console.log(`parse threads: 1 and ${cores} (the machine's cores); ${records} records per file; load average ${load.toFixed(1)} at the start (other work on the machine skews these)`);
  console.log(`${"records/s".padEnd(30)} ${"read (fs)".padStart(10)} ${"gunzip".padStart(8)} ${"pass 1 th".padStart(10)} ${`pass ${cores} th`.padStart(10)} ${"speed-up".padStart(9)} ${"serve".padStart(8)}`);
  for (const r of rows) {
    console.log(
      `${`${r.name} (${r.mb.toFixed(0)} MB)`.padEnd(30)} ${k(r.readRecordsPerSec).padStart(10)} ${(r.gunzipRecordsPerSec ? k(r.gunzipRecordsPerSec) : "").padStart(8)} ${k(r.one.passRecordsPerSec).padStart(10)} ${k(r.many.passRecordsPerSec).padStart(10)} ${`${(r.many.passRecordsPerSec / r.one.passRecordsPerSec).toFixed(2)}x`.padStart(9)} ${k(r.many.serveRecordsPerSec).padStart(8)}`,
    );
  }
  console.log(`records per CPU-second of the pass (all threads; what it cost, whatever share of the cores it got): ${rows.map((r) => `${r.name} ${k(r.one.passRecordsPerCpuSec).trim()} (1 thread), ${k(r.many.passRecordsPerCpuSec).trim()} (${cores})`).join("; ")}`);
  console.log(`2-trainer job on the TSV (batch 1024, ${steps} steps): ${Math.round(consumption)} records/s consumed`);
  for (const r of rows) {
    console.log(`ratio ${r.name}: pass (${cores} threads) / 2 trainers ${(r.many.passRecordsPerSec / consumption).toFixed(1)}x; serving from the cache / 2 trainers ${(r.many.serveRecordsPerSec / consumption).toFixed(1)}x; pass / read speed ${((100 * r.many.passRecordsPerSec) / r.readRecordsPerSec).toFixed(1)}%`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
