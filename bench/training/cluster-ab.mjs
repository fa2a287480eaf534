#!/usr/bin/env node
// A short A/B of the DLRM Kaggle cluster, or another architecture's (the configuration of `make
// bench-training`'s cluster rows) between builds of two checkouts, alternated
// within one invocation so both see the same machine load:
//   node bench/training/cluster-ab.mjs A=/work/main B=.[,VAR=VALUE...] [--runs 3] [--trainers 2] [--shards 1] [--mode sync] [--model dlrm]
// (--model: any architecture, with its default hyper-parameters; DLRM in the Kaggle widths)
// Prints per run samples/s, held-out AUC/logloss and the trainers' time split
// (wait / fetch / pull / compute / push, summed over trainers) and the CPU
// seconds all the cluster's processes used (start-up included: a measure of
// work that load does not inflate), then each variant's medians. Env: TRAIN_RECORDS (default 200000).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
// NAME=CHECKOUT, or NAME=CHECKOUT,VAR=VALUE,... to run that variant with environment variables set
// (e.g. B=.,PANGEA_PULL_AFTER_WORK=1 compares a switch within one build).
const variants = argv.filter((a) => /^[A-Za-z0-9_-]+=/.test(a)).map((a) => {
  const [root, ...vars] = a.slice(a.indexOf("=") + 1).split(",");
  return { name: a.split("=")[0], root: resolve(root), env: Object.fromEntries(vars.map((v) => [v.slice(0, v.indexOf("=")), v.slice(v.indexOf("=") + 1)])) };
});
if (!variants.length) {
  process.stderr.write("cluster-ab: expected NAME=CHECKOUT arguments, e.g. A=/work/main B=.\n");
  process.exit(2);
}
const runs = Number(opt("runs", "3"));
const trainers = Number(opt("trainers", "2"));
const shards = Number(opt("shards", "1"));
const mode = opt("mode", "sync");
const records = Number(process.env.TRAIN_RECORDS ?? 200_000);
const evalFraction = 1 / 11;
const batch = 4096 / trainers;
const steps = Math.floor((records - Math.round(records * evalFraction)) / 4096);
const work = mkdtempSync(join(tmpdir(), "pangea-cluster-ab-"));
const data = join(work, "criteo.tsv");
const config = join(work, "model.json");
const model = opt("model", "dlrm");
const { architectureConfig } = await import(join(variants[0].root, "packages/model/dist/index.js"));
const { name: _, ...hyper } = architectureConfig(model, model === "dlrm" ? { bottomMlp: [512, 256, 64, 16], topMlp: [512, 256] } : {});
writeFileSync(config, JSON.stringify(hyper));
execFileSync(process.execPath, [join(variants[0].root, "packages/cli/dist/main.js"), "gen-data", "--records", String(records), "--out", data], { stdio: "ignore" });
const extra = (opt("extra", "") || "").split(" ").filter(Boolean);
const results = new Map(variants.map((v) => [v.name, []]));
const cpus = new Map(variants.map((v) => [v.name, []]));
/** CPU seconds of every waited-for descendant so far (cutime + cstime of /proc/self/stat): the whole cluster's, load-independent. */
const childCpu = () => {
  const f = readFileSync("/proc/self/stat", "utf8").slice(readFileSync("/proc/self/stat", "utf8").lastIndexOf(")") + 2).split(" ");
  return (Number(f[13]) + Number(f[14])) / 100;
};
try {
  for (let r = 0; r < runs; r++) {
    for (const v of r % 2 ? [...variants].reverse() : variants) {
      const tag = `${v.name}-${r}`;
      const load = loadavg()[0].toFixed(1);
      const cpu0 = childCpu();
      const out = spawnSync(process.execPath, [
        join(v.root, "packages/cli/dist/main.js"), "run", "--json", "--data", data, "--eval-fraction", String(evalFraction),
        "--trainers", String(trainers), "--batch-size", String(batch), "--steps", String(steps), "--ps-shards", String(shards),
        "--embedding-dim", "16", "--model", model, "--model-config", config, "--seed", "7",
        "--dense-optimizer", "adagrad", "--dense-lr", "0.01", "--sparse-optimizer", "adagrad", "--sparse-lr", "0.05", "--mode", mode,
        "--log-dir", join(work, `logs-${tag}`), "--checkpoint-dir", join(work, `ckpt-${tag}`), ...extra,
      ], { cwd: v.root, encoding: "utf8", env: { ...process.env, ...v.env }, maxBuffer: 1 << 26 });
      if (out.status !== 0) throw new Error(`${v.name} run ${r} exited ${out.status}: ${out.stderr.trim().split("\n").slice(-3).join(" | ")}`);
      const cpu = childCpu() - cpu0;
      cpus.get(v.name).push(cpu);
      const s = JSON.parse(out.stdout.trim().split("\n").filter((l) => l.startsWith("{")).at(-1));
      const p = { wait: 0, fetch: 0, pull: 0, compute: 0, push: 0 };
      for (const w of s.workers.filter((x) => x.kind === "WORKER_KIND_TRAINER")) for (const k of Object.keys(p)) p[k] += w.phaseSeconds?.[k] ?? 0;
      const total = Object.values(p).reduce((a, b) => a + b, 0) || 1;
      const sps = Math.round(s.samples / s.elapsedSeconds);
      results.get(v.name).push(sps);
      console.log(`${v.name} run ${r}: ${sps} samples/s, ${((1000 * s.elapsedSeconds) / s.step).toFixed(0)} ms/step, AUC ${s.eval.auc.toFixed(6)} logloss ${s.eval.logloss.toFixed(6)} | ${Object.entries(p).map(([k, x]) => `${k} ${Math.round((100 * x) / total)}%`).join(" ")} | cluster CPU ${cpu.toFixed(1)} s | load ${load}`);
    }
  }
  for (const [name, xs] of results) {
    const sorted = [...xs].sort((a, b) => a - b);
    const c = [...cpus.get(name)].sort((a, b) => a - b);
    console.log(`${name}: median ${sorted[Math.floor(sorted.length / 2)]} samples/s (${xs.join(", ")}); median cluster CPU ${c[Math.floor(c.length / 2)].toFixed(1)} s`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
