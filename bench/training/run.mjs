#!/usr/bin/env node
// The training benchmark (`make bench-training`, part of `make bench`): the
// DLRM Kaggle configuration (embedding dim 16, bottom MLP 13-512-256-64-16,
// top MLP 512-256-1, Adagrad on dense and embeddings, batch 4096) on the
// synthetic Criteo-like data, one pass over the same TSV file, measured in
// one invocation so the ratios hold on a noisy machine:
//   (1) one Pangea trainer in-process (1, 2 and every core's BLAS threads),
//   (2) the full cluster: compute + orchestrator + 2 trainers over gRPC, in
//       sync mode (the step is the mean over both trainers' batches of 2048)
//       and in async mode (each trainer's batch applied on arrival, bounded
//       staleness), with batches of 2048 (twice PyTorch's updates) and of
//       4096 (as many updates as PyTorch, each on as many samples),
//   (3) the same model in PyTorch (Debian's python3-torch; on one core, with
//       its matmuls on 2 OpenBLAS threads, the fastest on 2 cores, and on more
//       cores with every core's threads too),
// plus the machine's sgemm peak and a scaling series (1, 2, 4 trainers on one
// parameter-server shard, 2 trainers on 2 shards) with each trainer's time
// split into compute, communication (fetch + pull + push) and waiting.
// Writes bench-results/training.json and bench-results/training.svg.
// Then, per architecture (`make bench-models`, or `--models-only`, runs only
// this part): every architecture (dlrm, dcn-v2, deepfm, wide-deep, mmoe,
// shared-bottom; ARCH=dcn-v2,deepfm picks some) on the cluster (2 trainers,
// sync), in one Pangea trainer in-process (as (1)) and
// in PyTorch (its twin from test/support/python/torch_ctr.py, through
// ctr_torch.py) with the same data, hyper-parameters (each one's defaults;
// DLRM's Kaggle widths), optimizers and steps; samples/s, held-out AUC and the
// ratios: bench-results/training-architectures.json. The in-process figure
// tells the architecture's own step from what distributing it costs.
// Each architecture runs ARCH_ROUNDS rounds (default 3) of its cluster job,
// every in-process and PyTorch configuration, one after the other, and
// each side's figure is the median over the rounds: PyTorch's small models
// moved by up to 2.2x between rounds, so a single run's ratio said more about
// the hour than the code.
// Env: TRAIN_RECORDS (default 330000; the last 1/11 held out), SKIP_SCALING=1,
// ARCH (comma-separated; default all), ARCH_STEPS (default one pass),
// ARCH_ROUNDS (default 3).
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, availableParallelism, cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderSvg } from "./plot.mjs";
import { SERVICE_MALLOC_ENV, SERVICE_V8_FLAGS } from "../../packages/kit/dist/index.js";
import { ARCHITECTURE_NAMES, architectureConfig } from "../../packages/model/dist/index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const evalFraction = 1 / 11;
const globalBatch = 4096;
/** The steps both sides leave out of their rate after warm-up: the orchestrator's (JobStatus.warmup_steps), given to PyTorch's twin. */
const warmupSteps = 10;
const lr = { dense: "0.01", sparse: "0.05" };
/**
 * The thread counts a single process runs with (one Pangea trainer in-process, PyTorch's OpenBLAS): 1, 2 and
 * every core. `pangea run` gives each of the cluster's trainers cores / trainers BLAS threads, so on a machine
 * of more than 2 cores a single process held to 2 would be compared with a cluster using them all.
 */
const cores = availableParallelism();
const threadCounts = [...new Set([1, 2, cores])].sort((a, b) => a - b);
/** PyTorch's configurations, [torch threads, OpenBLAS threads]: one torch thread over each BLAS count, and all cores for both where there are more than 2 (on 2, 2 + 2 oversubscribed the cores and was slower than 1 + 2). */
const torchConfigs = [...threadCounts.map((b) => [1, b]), ...(cores > 2 ? [[cores, cores]] : [])];
const torchConfigName = ([t, b]) => `${t}t-blas${b}`;
/** Made once the settings are checked; a failure removes it, as the run's end does. */
let work = null;
const fail = (msg) => {
  process.stderr.write(`bench/training/run.mjs: ${msg}\n`);
  if (work) rmSync(work, { recursive: true, force: true });
  process.exit(2);
};
/** A whole-number setting from the environment: unset or empty, its default. */
const envInt = (name, fallback) => ((process.env[name] ?? "").trim() === "" ? fallback : Number(process.env[name]));
const records = envInt("TRAIN_RECORDS", 330_000);
/** The fewest records that leave one step of globalBatch after the held-out part. */
let fewestRecords = globalBatch;
while (fewestRecords - Math.round(fewestRecords * evalFraction) < globalBatch) fewestRecords++;
if (!Number.isInteger(records) || records < fewestRecords) fail(`TRAIN_RECORDS: expected a whole number of records, at least ${fewestRecords} (one step of ${globalBatch} after the held-out 1/11), got ${process.env.TRAIN_RECORDS}`);
const trainRecords = records - Math.round(records * evalFraction);
const steps = Math.floor(trainRecords / globalBatch);
const archSteps = envInt("ARCH_STEPS", steps);
if (!Number.isInteger(archSteps) || archSteps < 1 || archSteps > steps) fail(`ARCH_STEPS: expected a whole number of steps 1..${steps} (one pass over TRAIN_RECORDS), got ${process.env.ARCH_STEPS}`);
const archRounds = envInt("ARCH_ROUNDS", 3);
if (!Number.isInteger(archRounds) || archRounds < 1 || archRounds > 20) fail(`ARCH_ROUNDS: expected a whole number of rounds 1..20, got ${process.env.ARCH_ROUNDS}`);
const log = (s) => process.stderr.write(`${s}\n`);
const modelsOnly = process.argv.includes("--models-only");
const archNames = (process.env.ARCH ?? "").trim() ? process.env.ARCH.split(",").map((n) => n.trim()) : ARCHITECTURE_NAMES;
for (const n of archNames) if (!ARCHITECTURE_NAMES.includes(n)) fail(`ARCH: unknown architecture "${n}"; expected a comma-separated list of ${ARCHITECTURE_NAMES.join(", ")}`);
/** Each architecture's hyper-parameters, as both sides get them: its defaults; DLRM in the Kaggle configuration. */
const ARCHS = Object.fromEntries(ARCHITECTURE_NAMES.map((n) => [n, architectureConfig(n, n === "dlrm" ? { bottomMlp: [512, 256, 64, 16], topMlp: [512, 256] } : {})]));

/** The run of `runs` with the highest `key` (samplesPerSec, or samplesPerSecAfterWarmup). */
function fastest(runs, key = "samplesPerSec") {
  return [...runs].sort((a, b) => b[key] - a[key])[0];
}

/** The median of `values` (the mean of the middle two for an even count). */
function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/**
 * One side of an architecture's rounds: the run whose samples/s is the median (the lower middle one for an even
 * count: a run's AUC and phases go with it), the medians of both rates over all rounds, and each run's rates.
 */
function medianOf(runs) {
  const byRate = [...runs].sort((a, b) => a.samplesPerSec - b.samplesPerSec);
  return {
    ...byRate[(byRate.length - 1) >> 1],
    samplesPerSec: Math.round(median(runs.map((r) => r.samplesPerSec))),
    samplesPerSecAfterWarmup: Math.round(median(runs.map((r) => r.samplesPerSecAfterWarmup))),
    rounds: runs.map((r) => ({ samplesPerSec: r.samplesPerSec, samplesPerSecAfterWarmup: r.samplesPerSecAfterWarmup })),
  };
}

/** Cluster / PyTorch after both sides' first warmupSteps steps (null where either ran too few to have the figure). */
function afterWarmupRatio(c, t) {
  return c.samplesPerSecAfterWarmup > 0 && t.samplesPerSecAfterWarmup > 0 ? +(c.samplesPerSecAfterWarmup / t.samplesPerSecAfterWarmup).toFixed(2) : null;
}

/** Runs a command, sampling the peak resident memory (VmHWM) of it and every descendant. */
function runMeasured(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const peaks = new Map();
    const sample = () => {
      const parents = new Map();
      for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
          parents.set(Number(pid), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
        } catch {
          // gone meanwhile
        }
      }
      const tree = new Set([child.pid]);
      for (let grew = true; grew; ) {
        grew = false;
        for (const [pid, ppid] of parents) if (tree.has(ppid) && !tree.has(pid)) (tree.add(pid), (grew = true));
      }
      for (const pid of tree) {
        try {
          const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
          peaks.set(pid, Math.max(peaks.get(pid) ?? 0, kb));
        } catch {
          // exited
        }
      }
    };
    const timer = setInterval(sample, 200);
    child.on("close", (code) => {
      clearInterval(timer);
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err.trim().split("\n").slice(-3).join(" | ")}`));
      resolve({ out, peakRssMb: Math.round([...peaks.values()].reduce((a, b) => a + b, 0) / 1024) });
    });
  });
}

const lastJson = (text) => JSON.parse(text.trim().split("\n").filter((l) => l.startsWith("{")).at(-1));

/** One Pangea trainer in one process on `model` (default DLRM Kaggle) with `threads` BLAS threads, for `steps` steps (0: one pass). */
async function inProcess(threads, { model = "dlrm", steps: inSteps = 0 } = {}) {
  log(`(1) one trainer in-process${model === "dlrm" ? "" : ` (${model})`}, ${threads} BLAS thread(s)`);
  // The heap settings every Pangea service runs with (SERVICE_V8_FLAGS, SERVICE_MALLOC_ENV).
  const { out } = await runMeasured(process.execPath, [
    ...SERVICE_V8_FLAGS, join(root, "bench/training/in-process.mjs"), "--data", data, "--eval-fraction", String(evalFraction), "--batch", String(globalBatch), "--threads", String(threads),
    "--dense-lr", lr.dense, "--sparse-lr", lr.sparse, "--architecture", JSON.stringify(ARCHS[model]), "--steps", String(inSteps), "--warmup-steps", String(warmupSteps),
  ], { env: { ...SERVICE_MALLOC_ENV, ...process.env } });
  return { ...lastJson(out), name: `pangea-in-process-${model === "dlrm" ? "" : `${model}-`}${threads}t` };
}

/**
 * The cluster on `model` (default DLRM Kaggle), `trainers` x `batch` samples a step, for
 * `jobSteps` steps (default: one pass over the training records, whatever the batch).
 */
async function cluster(trainers, shards, { mode = "sync", batch = globalBatch / trainers, tls = false, model = "dlrm", jobSteps = Math.floor(trainRecords / (batch * trainers)) } = {}) {
  log(`(2) cluster${model === "dlrm" ? "" : ` (${model})`}: compute + orchestrator (${shards} shard(s)) + ${trainers} trainer(s) over gRPC${tls ? " with mutual TLS" : ""}, ${mode}, batch ${batch} per trainer`);
  const tag = `${model}-${trainers}-${shards}-${mode}-${batch}-${jobSteps}${tls ? "-tls" : ""}`;
  const configFile = join(work, `model-${model}.json`);
  const { name: _, ...hyper } = ARCHS[model];
  writeFileSync(configFile, JSON.stringify(hyper));
  const args = [
    join(root, "packages/cli/dist/main.js"), "run", "--json", "--data", data, "--eval-fraction", String(evalFraction),
    "--trainers", String(trainers), "--batch-size", String(batch), "--steps", String(jobSteps), "--ps-shards", String(shards),
    "--embedding-dim", "16", "--model", model, "--model-config", configFile,
    "--dense-optimizer", "adagrad", "--dense-lr", lr.dense, "--sparse-optimizer", "adagrad", "--sparse-lr", lr.sparse, "--mode", mode,
    "--log-dir", join(work, `logs-${tag}`), "--checkpoint-dir", join(work, `ckpt-${tag}`),
    ...(tls ? ["--tls", "--tls-dir", join(work, "tls")] : []),
  ];
  const t0 = performance.now();
  const { out, peakRssMb } = await runMeasured(process.execPath, args);
  const wall = (performance.now() - t0) / 1000;
  const s = lastJson(out);
  if (Number(s.warmupSteps) && Number(s.warmupSteps) !== warmupSteps) fail(`the orchestrator left out ${s.warmupSteps} warm-up steps, PyTorch's twin is given ${warmupSteps}`);
  const phases = { compute: 0, communication: 0, wait: 0 };
  for (const w of s.workers.filter((x) => x.kind === "WORKER_KIND_TRAINER")) {
    const p = w.phaseSeconds ?? {};
    phases.compute += p.compute ?? 0;
    phases.communication += (p.fetch ?? 0) + (p.pull ?? 0) + (p.push ?? 0);
    phases.wait += p.wait ?? 0;
  }
  const total = phases.compute + phases.communication + phases.wait || 1;
  return {
    name: `pangea-cluster-${model === "dlrm" ? "" : `${model}-`}${trainers}t-${shards}s${mode === "sync" ? "" : `-${mode}`}${batch === globalBatch / trainers ? "" : `-b${batch}`}${tls ? "-tls" : ""}`,
    model,
    framework: `Pangea cluster: compute + orchestrator (${shards} parameter-server shard(s)) + ${trainers} trainer(s), gRPC on loopback${tls ? " with mutual TLS" : ""}, ${mode}, batch ${batch} per trainer`,
    trainers,
    shards,
    mode,
    batchPerTrainer: batch,
    samples: s.samples,
    steps: s.step,
    seconds: s.elapsedSeconds,
    wallSeconds: +wall.toFixed(1),
    samplesPerSec: Math.round(s.samples / s.elapsedSeconds),
    // The rate after the first warmupSteps steps (the orchestrator's figure; PyTorch's twin reports the same).
    samplesPerSecAfterWarmup: Math.round(s.samplesPerSecondAfterWarmup ?? 0),
    warmupSteps: Number(s.warmupSteps ?? 0),
    msPerStep: +((1000 * s.elapsedSeconds) / s.step).toFixed(2),
    auc: +s.eval.auc.toFixed(4),
    logloss: +s.eval.logloss.toFixed(4),
    firstLoss: +s.firstLoss.toFixed(4),
    lastLoss: +s.lastLoss.toFixed(4),
    peakRssMb,
    fractions: { compute: +(phases.compute / total).toFixed(3), communication: +(phases.communication / total).toFixed(3), wait: +(phases.wait / total).toFixed(3) },
  };
}

/**
 * PyTorch on `model` with `threads` of its own and `blasThreads` OpenBLAS threads (its matmuls run on
 * OpenBLAS's pool, not torch's), batches of globalBatch for `steps` steps (0: one pass).
 */
async function pytorch(threads, blasThreads, { model = "dlrm", steps: torchSteps = 0 } = {}) {
  log(`(3) PyTorch${model === "dlrm" ? "" : ` (${model})`}, ${threads} torch thread(s), ${blasThreads} OpenBLAS thread(s)`);
  // With Pangea's malloc settings (SERVICE_MALLOC_ENV): PyTorch allocates its activations and gradients afresh each
  // step, and with glibc's defaults paid a page fault per 4 KB of them: Wide&Deep ran 1.3-1.6x slower on 1 OpenBLAS
  // thread and 1.6-2.1x on 2, DLRM 1.1x (README, "Where the cluster's communication time goes").
  const { out } = await runMeasured("/usr/bin/python3", [
    join(root, "bench/training/ctr_torch.py"), "--data", data, "--eval-fraction", String(evalFraction), "--batch", String(globalBatch), "--steps", String(torchSteps),
    "--threads", String(threads), "--blas-threads", String(blasThreads), "--embedding-dim", "16", "--warmup-steps", String(warmupSteps), "--architecture", JSON.stringify(ARCHS[model]), "--dense-lr", lr.dense, "--sparse-lr", lr.sparse,
  ], { env: { ...SERVICE_MALLOC_ENV, ...process.env } });
  return { ...lastJson(out), name: `pytorch-${model === "dlrm" ? "" : `${model}-`}${threads}t-blas${blasThreads}` };
}

function sgemmPeak() {
  const script = `
    const { nativeBlas } = await import(${JSON.stringify(join(root, "packages/blas/dist/index.js"))});
    const { blas, reason } = nativeBlas();
    if (!blas) { console.log(JSON.stringify({ reason })); process.exit(0); }
    const n = 2048, A = new Float32Array(n * n).fill(0.5), B = new Float32Array(n * n).fill(0.25), C = new Float32Array(n * n);
    const out = { config: blas.config() };
    for (const t of ${JSON.stringify(threadCounts)}) {
      blas.setThreads(t);
      blas.gemm(false, false, n, n, n, A, 0, B, 0, C, 0, 1, 0, 0, 0, null, 0, 0, false);
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) blas.gemm(false, false, n, n, n, A, 0, B, 0, C, 0, 1, 0, 0, 0, null, 0, 0, false);
      out["gflops" + t] = +((5 * 2 * n ** 3) / ((performance.now() - t0) / 1000) / 1e9).toFixed(1);
    }
    console.log(JSON.stringify(out));`;
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }).trim());
}

function torchAvailable() {
  try {
    execFileSync("/usr/bin/python3", ["-c", "import torch"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** The DLRM Kaggle configuration in every setting (in-process, cluster sync/async/TLS, PyTorch, scaling): training.{json,svg}. */
async function dlrmDetail(haveTorch) {
  const peak = sgemmPeak();
  const results = [];
  for (const t of threadCounts) results.push(await inProcess(t));
  const clusterMain = await cluster(2, 1);
  const clusterAsync = await cluster(2, 1, { mode: "async" });
  const clusterAsyncFull = await cluster(2, 1, { mode: "async", batch: globalBatch });
  const clusterTls = await cluster(2, 1, { tls: true });
  results.push(clusterMain, clusterAsync, clusterAsyncFull, clusterTls);
  // One core (1 + 1) and more (on 2 cores the fastest was 1 torch thread and 2 OpenBLAS threads): the ratios
  // below divide by the fastest.
  if (haveTorch) for (const [t, b] of torchConfigs) results.push(await pytorch(t, b));
  const scaling = [];
  if (process.env.SKIP_SCALING !== "1") {
    scaling.push(await cluster(1, 1), clusterMain, await cluster(4, 1), await cluster(2, 2));
  }
  const best = (prefix, key) => fastest(results.filter((r) => r.name.startsWith(prefix)), key);
  const torch = best("pytorch");
  const torchAfterWarmup = best("pytorch", "samplesPerSecAfterWarmup");
  const single = best("pangea-in-process");
  const summary = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? "" },
    model: "DLRM Kaggle: dim 16, bottom 13-512-256-64-16, top 512-256-1, Adagrad (dense lr 0.01, embeddings lr 0.05), batch 4096",
    records,
    sgemmPeak: peak,
    results,
    scaling,
    ratios: {
      clusterTlsVsPlaintext: +(clusterTls.samplesPerSec / clusterMain.samplesPerSec).toFixed(2),
      clusterVsPytorch: torch ? +(clusterMain.samplesPerSec / torch.samplesPerSec).toFixed(2) : null,
      clusterVsPytorchAfterWarmup: torchAfterWarmup ? afterWarmupRatio(clusterMain, torchAfterWarmup) : null,
      clusterAsyncVsPytorch: torch ? +(clusterAsync.samplesPerSec / torch.samplesPerSec).toFixed(2) : null,
      aucClusterAsyncMinusPytorch: torch ? +(clusterAsync.auc - torch.auc).toFixed(4) : null,
      clusterAsyncFullBatchVsPytorch: torch ? +(clusterAsyncFull.samplesPerSec / torch.samplesPerSec).toFixed(2) : null,
      aucClusterAsyncFullBatchMinusPytorch: torch ? +(clusterAsyncFull.auc - torch.auc).toFixed(4) : null,
      inProcessVsPytorch: torch ? +(single.samplesPerSec / torch.samplesPerSec).toFixed(2) : null,
      aucClusterMinusPytorch: torch ? +(clusterMain.auc - torch.auc).toFixed(4) : null,
      matmulPeakOverAchieved: single.matmulGflops && peak.gflops1 ? +(Math.max(...threadCounts.map((t) => peak["gflops" + t])) / single.matmulGflops).toFixed(2) : null,
    },
  };
  const outDir = join(root, "bench-results");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "training.json"), `${JSON.stringify(summary, null, 2)}\n`);
  writeFileSync(join(outDir, "training.svg"), renderSvg(summary));
  const pad = (s, n) => String(s).padEnd(n);
  console.log(`sgemm peak (OpenBLAS, 2048^3): ${threadCounts.map((t) => `${peak["gflops" + t] ?? "-"} GFLOPS on ${t} thread(s)`).join(", ")}${peak.reason ? ` (${peak.reason})` : ""}`);
  console.log(`${pad("configuration", 34)}${pad("samples/s", 11)}${pad(`after ${warmupSteps} steps`, 16)}${pad("ms/step", 9)}${pad("AUC", 8)}${pad("logloss", 9)}peak RSS`);
  for (const r of [...results, ...scaling.filter((s) => s !== clusterMain)]) {
    console.log(`${pad(r.name, 34)}${pad(r.samplesPerSec, 11)}${pad(r.samplesPerSecAfterWarmup || "-", 16)}${pad(r.msPerStep, 9)}${pad(r.auc, 8)}${pad(r.logloss, 9)}${r.peakRssMb} MB${r.matmulGflops ? `  (matmuls ${r.matmulGflops} GFLOPS)` : ""}`);
  }
  for (const s of scaling) console.log(`scaling ${pad(s.name, 26)} ${pad(s.samplesPerSec, 8)} samples/s  compute ${(100 * s.fractions.compute).toFixed(0)}%  communication ${(100 * s.fractions.communication).toFixed(0)}%  wait ${(100 * s.fractions.wait).toFixed(0)}%`);
  if (torch) {
    console.log(`ratio cluster (2 trainers, sync) / PyTorch best (${torch.framework}): ${summary.ratios.clusterVsPytorch}x; AUC ${clusterMain.auc} vs ${torch.auc}`);
    console.log(`ratio cluster (2 trainers, sync) / PyTorch best after each one's first ${warmupSteps} steps: ${summary.ratios.clusterVsPytorchAfterWarmup ?? "-"}x`);
    console.log(`ratio cluster (2 trainers, async, batch ${globalBatch / 2} each) / PyTorch best: ${summary.ratios.clusterAsyncVsPytorch}x; AUC ${clusterAsync.auc} vs ${torch.auc}`);
    console.log(`ratio cluster (2 trainers, async, batch ${globalBatch} each: as many updates as PyTorch) / PyTorch best: ${summary.ratios.clusterAsyncFullBatchVsPytorch}x; AUC ${clusterAsyncFull.auc} vs ${torch.auc}`);
    console.log(`ratio one trainer in-process (best) / PyTorch best: ${summary.ratios.inProcessVsPytorch}x`);
  }
  console.log(`ratio cluster (2 trainers, sync) with mutual TLS / plaintext: ${summary.ratios.clusterTlsVsPlaintext}x; AUC ${clusterTls.auc} vs ${clusterMain.auc}`);
  if (summary.ratios.matmulPeakOverAchieved) console.log(`sgemm peak / single trainer's matmul rate: ${summary.ratios.matmulPeakOverAchieved}x`);
  console.log(`wrote ${join("bench-results", "training.json")} and ${join("bench-results", "training.svg")}`);
  return { cluster: clusterMain, torchRuns: results.filter((r) => r.name.startsWith("pytorch")), inProcessRuns: results.filter((r) => r.name.startsWith("pangea-in-process")) };
}

/**
 * Every architecture of ARCH (default all) against its PyTorch twin: the cluster (2 trainers, sync,
 * batch 2048 each) and PyTorch (batch 4096, each of torchConfigs) on the same data,
 * hyper-parameters, optimizers and steps, ARCH_ROUNDS rounds of the three runs one after the other;
 * each side's figure is its median over the rounds (PyTorch's: the configuration with the higher
 * median): training-architectures.json. DLRM's first round is the detail run's when that ran with as
 * many steps.
 */
async function perArchitecture(haveTorch, dlrm) {
  const t0 = performance.now();
  const rows = [];
  for (const model of archNames) {
    const reuse = dlrm && model === "dlrm" && archSteps === steps;
    const clusterRuns = reuse ? [dlrm.cluster] : [];
    const torchRuns = new Map(torchConfigs.map((c) => [torchConfigName(c), []]));
    const inRuns = new Map(threadCounts.map((t) => [t, []]));
    if (reuse) for (const r of dlrm.torchRuns) torchRuns.get(r.name.slice("pytorch-".length))?.push(r);
    if (reuse) for (const r of dlrm.inProcessRuns) inRuns.get(Number(/-(\d+)t$/.exec(r.name)?.[1]))?.push(r);
    for (let round = clusterRuns.length; round < archRounds; round++) {
      if (archRounds > 1) log(`${model}: round ${round + 1} of ${archRounds}`);
      clusterRuns.push(await cluster(2, 1, { model, jobSteps: archSteps }));
      if (haveTorch) for (const c of torchConfigs) torchRuns.get(torchConfigName(c)).push(await pytorch(c[0], c[1], { model, steps: archSteps }));
      for (const t of threadCounts) inRuns.get(t).push(await inProcess(t, { model, steps: archSteps }));
    }
    const c = medianOf(clusterRuns);
    // The same architecture's step with no distribution: one trainer in one process, its faster configuration.
    const single = fastest([...inRuns.values()].map(medianOf));
    let t = null;
    // Each ratio divides by PyTorch's faster configuration by that measure.
    let tw = null;
    if (haveTorch) {
      const configs = [...torchRuns.values()].map(medianOf);
      t = fastest(configs);
      tw = fastest(configs, "samplesPerSecAfterWarmup");
    }
    rows.push({
      model,
      architecture: ARCHS[model],
      cluster: c,
      pytorch: t,
      ratio: t ? +(c.samplesPerSec / t.samplesPerSec).toFixed(2) : null,
      inProcess: single,
      inProcessVsPytorch: t ? +(single.samplesPerSec / t.samplesPerSec).toFixed(2) : null,
      clusterVsInProcess: +(c.samplesPerSec / single.samplesPerSec).toFixed(2),
      pytorchAfterWarmup: tw?.samplesPerSecAfterWarmup ?? null,
      ratioAfterWarmup: tw ? afterWarmupRatio(c, tw) : null,
      aucClusterMinusPytorch: t ? +(c.auc - t.auc).toFixed(4) : null,
    });
  }
  const summary = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? "", loadAverage: loadavg().map((x) => +x.toFixed(2)) },
    config: `embedding dim 16, each architecture's default hyper-parameters (dlrm: Kaggle bottom 13-512-256-64-16, top 512-256-1), Adagrad (dense lr ${lr.dense}, embeddings lr ${lr.sparse}), ${archSteps} steps of ${globalBatch} samples (cluster: 2 trainers x ${globalBatch / 2}, sync), the median of ${archRounds} round(s)`,
    records,
    steps: archSteps,
    rounds: archRounds,
    wallSeconds: Math.round((performance.now() - t0) / 1000),
    rows,
  };
  const outDir = join(root, "bench-results");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "training-architectures.json"), `${JSON.stringify(summary, null, 2)}\n`);
  const pad = (s, n) => String(s).padEnd(n);
  console.log(`per architecture (${summary.wallSeconds} s): ${summary.config}; load average ${summary.machine.loadAverage.join(" ")}`);
  console.log(`${pad("architecture", 15)}${pad("cluster samples/s", 19)}${pad("PyTorch samples/s", 19)}${pad("ratio", 8)}${pad(`after ${warmupSteps} steps: cluster / PyTorch`, 35)}${pad("AUC cluster", 13)}${pad("AUC PyTorch", 13)}trainers' time: compute / communication / wait`);
  // Each side's rounds, slowest to fastest: how far one run could have moved the ratio.
  const spread = (side) => (side && side.rounds.length > 1 ? ` (${side.rounds.map((x) => x.samplesPerSec).sort((a, b) => a - b).join(", ")})` : "");
  for (const r of rows) {
    const f = r.cluster.fractions;
    if (archRounds > 1) console.log(`${pad(r.model, 15)}rounds' samples/s: cluster${spread(r.cluster)}; PyTorch, its faster configuration${spread(r.pytorch)}`);
    console.log(`${pad(r.model, 15)}${pad(r.cluster.samplesPerSec, 19)}${pad(r.pytorch?.samplesPerSec ?? "-", 19)}${pad(r.ratio === null ? "-" : `${r.ratio.toFixed(2)}x`, 8)}${pad(r.ratioAfterWarmup === null ? "-" : `${r.cluster.samplesPerSecAfterWarmup} / ${r.pytorchAfterWarmup} = ${r.ratioAfterWarmup.toFixed(2)}x`, 35)}${pad(r.cluster.auc, 13)}${pad(r.pytorch?.auc ?? "-", 13)}${[f.compute, f.communication, f.wait].map((x) => `${Math.round(100 * x)}%`).join(" / ")}`);
  }
  // Where the gap to PyTorch is: the architecture's own step (one trainer, one process, no network), or the distribution.
  console.log(`${pad("architecture", 15)}${pad("in-process samples/s", 22)}${pad(`after ${warmupSteps} steps`, 16)}${pad("in-process / PyTorch", 22)}${pad("cluster / in-process", 22)}AUC in-process`);
  for (const r of rows) {
    const i = r.inProcess;
    if (archRounds > 1) console.log(`${pad(r.model, 15)}rounds' samples/s: in-process, its faster configuration${spread(i)}`);
    console.log(`${pad(r.model, 15)}${pad(i.samplesPerSec, 22)}${pad(i.samplesPerSecAfterWarmup || "-", 16)}${pad(r.inProcessVsPytorch === null ? "-" : `${r.inProcessVsPytorch.toFixed(2)}x`, 22)}${pad(`${r.clusterVsInProcess.toFixed(2)}x`, 22)}${i.auc}`);
  }
  console.log(`wrote ${join("bench-results", "training-architectures.json")}`);
}

// Made once the settings are checked: a refused setting leaves nothing behind.
work = mkdtempSync(join(tmpdir(), "pangea-bench-training-"));
const data = join(work, "criteo.tsv");
try {
  log(`data: ${records} synthetic Criteo-like records (${steps} steps of ${globalBatch} for training${archSteps < steps ? `; the architectures run ${archSteps} of them` : ""}, the last ${Math.round(records * evalFraction)} held out), ${cpus().length} cores`);
  execFileSync(process.execPath, [join(root, "packages/cli/dist/main.js"), "gen-data", "--records", String(records), "--out", data], { stdio: "ignore" });
  const haveTorch = torchAvailable();
  if (!haveTorch) log("(3) PyTorch: not run — /usr/bin/python3 cannot import torch (apt-get install python3-torch libopenblas0-pthread)");
  const dlrm = modelsOnly ? null : await dlrmDetail(haveTorch);
  await perArchitecture(haveTorch, dlrm);
} finally {
  rmSync(work, { recursive: true, force: true });
}
