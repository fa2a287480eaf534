import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { ENTRY, ROOT, waitFor } from "../support/processes.js";
import { ARCHITECTURE_NAMES } from "@pangea/model";

/**
 * For every architecture: a short real job exports the model (--export-dir),
 * serving loads the export, and its probabilities for a few examples equal
 * PyTorch's (test/support/python/torch_ctr.py, float64) run on the exported
 * files themselves: manifest.json, dense.f32 and each slot's ids and rows,
 * read here byte by byte, not through Pangea's loader. An id the export has
 * no row for counts as a zero row, and so does id 0 (a missing value).
 */
const PYTHON = "/usr/bin/python3";
const available = spawnSync(PYTHON, ["-c", "import torch"]).status === 0;
const tmp = mkdtempSync(join(tmpdir(), "pangea-models-"));
const servers: ChildProcess[] = [];

afterAll(() => {
  for (const s of servers) s.kill("SIGTERM");
});

interface Manifest {
  model: { numDense: number; numSlots: number; embeddingDim: number; architecture: Record<string, unknown>; tasks?: { name: string; loss: string; weight: number }[] };
  slotIds: number[];
  denseParams: { name: string; shape: number[] }[];
  tables: { slot: number; dim: number; rows: number }[];
}

/** The exported version as plain numbers: ids as decimal strings, each slot's rows by id. */
function readExport(dir: string) {
  const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Manifest;
  const dense = readFileSync(join(dir, "dense.f32"));
  let at = 0;
  const params = manifest.denseParams.map((p) => {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, (_, i) => dense.readFloatLE((at + i) * 4));
    at += n;
    return { name: p.name, shape: p.shape, values };
  });
  expect(at * 4, "dense.f32 holds exactly the declared params").toBe(dense.length);
  const rows = new Map<string, number[]>();
  const idsBySlot = new Map<number, string[]>();
  for (const t of manifest.tables) {
    const ids = readFileSync(join(dir, `slot-${t.slot}.ids.u64`));
    const values = readFileSync(join(dir, `slot-${t.slot}.rows.f32`));
    expect(ids.length).toBe(8 * t.rows);
    expect(values.length).toBe(4 * t.rows * t.dim);
    const list: string[] = [];
    for (let r = 0; r < t.rows; r++) {
      const id = ids.readBigUInt64LE(8 * r).toString();
      list.push(id);
      rows.set(id, Array.from({ length: t.dim }, (_, k) => values.readFloatLE(4 * (r * t.dim + k))));
    }
    idsBySlot.set(t.slot, list);
  }
  return { manifest, params, rows, idsBySlot, rowWidth: manifest.tables[0]!.dim };
}

async function trainAndExport(model: string, config: Record<string, unknown> | null): Promise<string> {
  const base = join(tmp, model, "models");
  const args = ["--model", model, "--steps", "6", "--batch-size", "128", "--checkpoint-dir", join(tmp, model, "ckpt"), "--export-dir", base];
  if (config) {
    const file = join(tmp, model, "model.json");
    mkdirSync(join(tmp, model), { recursive: true });
    writeFileSync(file, JSON.stringify(config));
    args.push("--model-config", file);
  }
  const c = await LocalCluster.start({ trainers: 1, logDir: join(tmp, model, "logs"), orchestratorArgs: args, computeArgs: ["--eval-records", "256"], trainerArgs: [] });
  try {
    const status = new StatusClient(c.orchestratorAddress);
    await status.connect(5_000);
    const final = await waitFor(`${model} to finish`, async () => {
      const s = await status.get();
      return s.state === "JOB_STATE_COMPLETED" || s.state === "JOB_STATE_FAILED" ? s : null;
    }, 60_000, 100);
    status.close();
    expect(final.state, final.error).toBe("JOB_STATE_COMPLETED");
  } finally {
    await c.stop(1_000);
  }
  return base;
}

async function startServing(base: string): Promise<string> {
  const server = spawn(process.execPath, [ENTRY.serving, "--model-base-path", base, "--model-name", "ctr", "--port", "0", "--rest-port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  servers.push(server);
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: server.stdout! }).once("line", resolve);
    server.once("exit", (code) => reject(new Error(`serving exited with ${code}`)));
  });
  return (JSON.parse(line) as { rest: string }).rest;
}

/** torch_ctr.py's run() on each input, in one Python process (importing torch once costs seconds). */
function torchRuns(inputs: unknown[]): Promise<{ probabilities: number[] }[]> {
  const driver = "import json, sys; sys.path.insert(0, sys.argv[1]); import torch_ctr; json.dump([torch_ctr.run(s) for s in json.load(sys.stdin)], sys.stdout)";
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, ["-c", driver, join(ROOT, "test/support/python")], { encoding: "utf8", maxBuffer: 64 << 20, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`torch_ctr.py failed (${err.code ?? err.signal}): ${stderr}`)) : resolve(JSON.parse(stdout) as { probabilities: number[] }[]),
    );
    child.stdin!.end(JSON.stringify(inputs));
  });
}

interface Served {
  manifest: Manifest;
  served: number[];
  /** torch_ctr.py's input: the exported weights and the requested ids' rows. */
  torchInput: unknown;
}

/** Train, export, serve, predict 5 examples, and the same question for PyTorch on the exported files. */
async function trainServePredict(model: string, config: Record<string, unknown> | null): Promise<Served> {
  const base = await trainAndExport(model, config);
  const rest = await startServing(base);
  const { manifest, params, rows, idsBySlot, rowWidth } = readExport(join(base, "1"));
  const { numDense, numSlots, embeddingDim } = manifest.model;
  // 5 examples: exported ids (different ones per example), in example 3 some ids of their slot the export never saw, in example 4 one missing (0).
  const B = 5;
  const ids = Array.from({ length: B }, (_, e) =>
    manifest.slotIds.map((slot, s) => {
      if (e === 3 && s % 5 === 1) {
        const absent = ((BigInt(slot) << 48n) | 0xfeedbeefn).toString();
        if (rows.has(absent)) throw new Error(`id ${absent} was meant to be absent from the export`);
        return absent;
      }
      if (e === 4 && s === 2) return "0";
      const known = idsBySlot.get(slot) ?? [];
      if (known.length === 0) throw new Error(`the export has no rows for slot ${slot}`);
      return known[(e * 7 + s) % known.length]!;
    }),
  );
  const dense = Array.from({ length: B }, (_, e) => Array.from({ length: numDense }, (_, j) => (((e + 1) * (j + 3)) % 7) / 3));
  const res = await fetch(`http://${rest}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ inputs: { dense_features: dense, feature_ids: ids } }) });
  if (res.status !== 200) throw new Error(`Predict answered ${res.status}: ${await res.text()}`);
  const served = ((await res.json()) as { outputs: { probabilities: number[] } }).outputs.probabilities;
  // The unique rows of the requested ids, a zero row for those the export lacks.
  const unique = [...new Set(ids.flat())];
  // Serving runs without dropout (a training setting): its reference is the model without it.
  const { dropout: _dropout, ...architecture } = manifest.model.architecture;
  const torchInput = {
    architecture,
    numDense,
    numSlots,
    embeddingDim,
    rowWidth,
    ...(manifest.model.tasks ? { tasks: manifest.model.tasks } : {}),
    params,
    batch: {
      size: B,
      dense: dense.flat(),
      labels: new Array(B * (manifest.model.tasks?.length || 1)).fill(0),
      weights: null,
      rows: unique.flatMap((id) => rows.get(id) ?? new Array(rowWidth).fill(0)),
      uniqueRows: unique.length,
      inverse: ids.flat().map((id) => unique.indexOf(id)),
      cellOfValue: null,
    },
  };
  return { manifest, served, torchInput };
}

const CASES: [string, Record<string, unknown> | null][] = [
  ["dlrm", null],
  // Trained with dropout: the export records the rate, and serving predicts without it.
  ["dcn-v2", { crossLayers: 2, lowRank: 4, structure: "parallel", deepMlp: [16], dropout: 0.2 }],
  ["deepfm", null],
  ["wide-deep", null],
  ["mmoe", { numExperts: 3, expertMlp: [16], towerMlp: [8], dropout: 0.1 }],
  ["shared-bottom", null],
];

// The jobs run side by side (each mostly waits on its processes' start), then PyTorch answers for all; each test awaits its own.
const outcomes = new Map<string, Promise<Served & { reference: number[] }>>();

it("has a case for every architecture of the registry", () => {
  expect(ARCHITECTURE_NAMES.filter((n) => !CASES.some(([model]) => model === n))).toEqual([]);
});

describe.runIf(available)("every architecture: serving's predictions on an exported model equal PyTorch's on the exported weights", () => {
  beforeAll(() => {
    const jobs = CASES.map(([model, config]) => trainServePredict(model, config));
    const references = Promise.allSettled(jobs).then(async (done) => {
      const ok = done.flatMap((d) => (d.status === "fulfilled" ? [d.value] : []));
      const answers = await torchRuns(ok.map((d) => d.torchInput));
      return new Map(ok.map((d, i) => [d, answers[i]!.probabilities]));
    });
    CASES.forEach(([model], i) => {
      const outcome = Promise.all([jobs[i]!, references]).then(([d, refs]) => ({ ...d, reference: refs.get(d)! }));
      outcome.catch(() => {}); // reported by the model's own test
      outcomes.set(model, outcome);
    });
  });

  it.each(CASES)("%s", async (model, config) => {
    const { manifest, served, reference } = await outcomes.get(model)!;
    expect(manifest.model.architecture.name).toBe(model);
    if (config) expect(manifest.model.architecture).toMatchObject(config);
    expect(served).toHaveLength(5);
    // Serving computes in float32, PyTorch in float64.
    served.forEach((p, i) => expect(Math.abs(p - reference[i]!), `example ${i}: serving ${p}, PyTorch ${reference[i]}`).toBeLessThan(2e-5));
    // A trained model tells the examples apart.
    expect(new Set(served.map((p) => p.toFixed(5))).size).toBeGreaterThan(1);
  }, 90_000);
});
