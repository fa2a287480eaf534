#!/usr/bin/env node
// `make bench` (and alone: node scripts/bench-streamed.mjs [BUDGET_MB] [TIMES]):
// trains one epoch on a generated Criteo TSV TIMES (default 4) x compute's
// --max-memory-mb (default 64), and prints the peak resident memory of every
// process of the job, the job's records/s and held-out AUC. A figure, not a
// test: nothing is asserted.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const budgetMb = Number(process.argv[2] ?? 64);
const times = Number(process.argv[3] ?? 4);
const TRAINERS = 2;
const BATCH = 1024;
// gen-data's lines average about 261 bytes.
const records = Math.ceil((times * budgetMb * 2 ** 20) / 261 / (TRAINERS * BATCH)) * TRAINERS * BATCH;
const tmp = mkdtempSync(join(tmpdir(), "pangea-bench-streamed-"));
/** The run failed: its logs stay for reading. */
let keep = false;
const data = join(tmp, "criteo.tsv");
try {
  execFileSync(process.execPath, [join(root, "packages/cli/dist/main.js"), "gen-data", "--format", "criteo", "--records", String(records), "--out", data], { stdio: ["ignore", "ignore", "inherit"] });
  const fileMb = statSync(data).size / 2 ** 20;
  // One epoch of the 90% that trains, in whole steps.
  const steps = Math.floor((records * 0.9) / (TRAINERS * BATCH));
  const started = performance.now();
  const run = spawn(process.execPath, [join(root, "packages/cli/dist/main.js"), "run", "--data", data, "--max-memory-mb", String(budgetMb), "--cache-dir", join(tmp, "cache"),
    "--trainers", String(TRAINERS), "--batch-size", String(BATCH), "--steps", String(steps), "--json", "--log-dir", join(tmp, "logs"), "--checkpoint-dir", join(tmp, "ckpt")], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  run.stdout.on("data", (d) => (out += d));
  const peaks = new Map();
  const poll = setInterval(() => {
    for (const pid of descendants(run.pid)) {
      try {
        const status = readFileSync(`/proc/${pid}/status`, "utf8");
        const hwm = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0);
        const name = processName(pid);
        peaks.set(name, Math.max(peaks.get(name) ?? 0, hwm));
      } catch {
        // Exited between the listing and the read.
      }
    }
  }, 100);
  const code = await new Promise((r) => run.on("exit", r));
  clearInterval(poll);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) {
    keep = true;
    throw new Error(`pangea run exited ${code}; logs in ${join(tmp, "logs")} (kept)`);
  }
  const status = JSON.parse(out.trim().split("\n").pop());
  console.log(`Criteo TSV ${fileMb.toFixed(0)} MB (${records} records, ${(fileMb / budgetMb).toFixed(1)} x --max-memory-mb ${budgetMb}); ${TRAINERS} trainers, batch ${BATCH}, ${steps} steps (one epoch)`);
  for (const [name, kb] of [...peaks].sort()) console.log(`peak resident ${name.padEnd(14)} ${(kb / 1024).toFixed(0).padStart(6)} MB`);
  console.log(`records/s (training, from the job)  ${Math.round(Number(status.samplesPerSecond))}`);
  console.log(`records/s (end to end, incl. start-up and the cache pass)  ${Math.round(Number(status.samples) / seconds)}`);
  console.log(`held-out AUC  ${status.eval?.auc?.toFixed(4) ?? "none"}`);
} finally {
  if (!keep) rmSync(tmp, { recursive: true, force: true });
}

/** Every process below `pid`, from /proc's parent links. */
function descendants(pid) {
  const parent = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // Gone.
    }
  }
  const out = [];
  const want = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, pp] of parent) if (want.has(pp) && !want.has(p)) (want.add(p), out.push(p), (grew = true));
  }
  return [pid, ...out];
}

/** orchestrator, compute, trainer-N, shard, or the CLI, from a process's command line. */
function processName(pid) {
  const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  const entry = args.find((a) => a.includes("/dist/")) ?? args[0];
  if (entry.includes("services/trainer")) return `trainer (${pid})`;
  const m = /services\/(\w+)\//.exec(entry);
  return m ? m[1] : "pangea run";
}
