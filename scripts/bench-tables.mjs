#!/usr/bin/env node
// `make bench` (tables part): Pangea's EmbeddingTable, a JS Map baseline and
// a C++ absl::flat_hash_map baseline (bench/cpp, built here with g++ and
// Debian's libabsl-dev; benchmark code only) on the same workload, in one
// run, with the ratios. Usage: bench-tables.mjs [ROWS] [BATCHES] [BATCH]
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [rows = "10000000", batches = "500", batch = "4096"] = process.argv.slice(2);
const lines = (out) => out.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));

let cpp = null;
const exe = join(mkdtempSync(join(tmpdir(), "pangea-bench-")), "flat_hash_map_bench");
const build = spawnSync("g++", ["-O2", "-std=c++17", `-I${join(root, "packages/blas/native")}`, "-o", exe, join(root, "bench/cpp/flat_hash_map_bench.cc"), "-labsl_hash", "-labsl_raw_hash_set", "-labsl_city", "-labsl_low_level_hash"], { encoding: "utf8" });
if (build.status === 0) cpp = exe;
else console.log(`C++ baseline not built (needs g++ and Debian's libabsl-dev): ${(build.stderr || build.error?.message || "").split("\n")[0]}`);

const results = [];
for (const dim of ["16", "64"]) {
  const table = (...extra) => lines(execFileSync(process.execPath, ["--max-old-space-size=8192", join(root, "services/orchestrator/dist/bench/embedding-table.js"), rows, dim, batches, batch, ...extra], { encoding: "utf8", maxBuffer: 1 << 24 }));
  results.push(...table());
  // The batched insert in a process of its own, as the one-at-a-time insert above is the first thing its process does.
  try {
    results.push(...table("--batched-insert"));
  } catch (err) {
    console.log(`batched insert not timed: ${String(err.stderr || err.message).trim().split("\n").at(-1)}`);
  }
  if (cpp) results.push(...lines(execFileSync(cpp, [rows, dim, batches, batch], { encoding: "utf8" })));
}
console.log(`rows ${rows}, ${batches} batches of ${batch} log-uniform ids`);
for (const r of results) console.log(`dim ${String(r.dim).padStart(2)}  ${r.op.padEnd(16)} ${r.impl.padEnd(28)} ${String(r.perSec).padStart(11)} /s`);
for (const dim of [16, 64]) {
  for (const op of ["insert", "lookup", "apply_gradients"]) {
    const ours = results.find((r) => r.dim === dim && r.op === op && r.impl === "pangea EmbeddingTable");
    const batched = results.find((r) => r.dim === dim && r.op === op && r.impl.startsWith("pangea EmbeddingTable, batched"));
    const map = results.find((r) => r.dim === dim && r.op === op && r.impl.startsWith("js Map"));
    const c = results.find((r) => r.dim === dim && r.op === op && r.impl.startsWith("c++"));
    const vsC = (x) => (c && x ? `, ${x === ours ? "pangea" : "pangea batched"} / c++ ${(x.perSec / c.perSec).toFixed(2)}x` : "");
    console.log(`dim ${dim} ${op}: pangea / js Map ${(ours.perSec / map.perSec).toFixed(2)}x${vsC(ours)}${vsC(batched)}`);
  }
}
