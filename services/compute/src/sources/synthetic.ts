import { Rng, hashWords } from "@pangea/kit";
import { criteoDenseName, criteoFeatureListConfig, criteoSlotName, hashedIdV2, normalizeCount, type FeatureListConfig } from "@pangea/features";
import type { DataSource, RecordBlock, SourceDescription, SplitName } from "./source.js";
import type { PlainSample } from "@pangea/monolith";
import { aucAndLogloss, type TaskSpec } from "@pangea/model";

/**
 * A Criteo-like data set generated from a known model, so the best achievable
 * AUC is known: 13 count-like dense features (log-normal, some missing) and 26
 * categorical slots with Zipf-distributed values of Criteo-like cardinalities.
 * Labels are Bernoulli draws of sigmoid(logit) where the logit is a linear
 * term in the dense features, one weight per categorical value, and low-rank
 * dot products between a few slot pairs (the structure DLRM's interaction
 * layer can represent). Every record is a pure function of (seed, split,
 * index), so any process can produce any share of it.
 *
 * With two tasks a record also carries a conversion label, as ESMM's data:
 * observed only on clicked records, drawn from p(conversion | click, x), a
 * logistic model of its own over the same features, so the label is 1 with
 * probability p(click | x) * p(conversion | click, x). The conversion's draws
 * come from their own random streams, so the click data is the same whatever
 * the task count. Slot USER_SLOT stands for the user (GAUC's groups).
 */
export const SYNTHETIC_NUM_DENSE = 13;
// Criteo Kaggle's smaller cardinalities, scaled down 4x so a run of a few
// hundred thousand samples sees most values often enough to learn them.
export const SYNTHETIC_VOCAB = [
  365, 146, 2533, 551, 76, 6, 3129, 158, 3, 2345, 1430, 2250, 799, 7, 3748, 1365, 3, 1413, 543, 4, 1762, 5, 4, 716, 26, 36,
];
const ZIPF_EXPONENT = 1.2;
const MISSING_RATE_DENSE = 0.1;
const MISSING_RATE_CAT = 0.03;
const LATENT = 4;
const INTERACTING_PAIRS: [number, number][] = [[0, 2], [3, 6], [9, 10], [11, 14]];
// Sets the conversion rate among clicks near 20% (about 6% of all records for seed 42).
const CONVERSION_BIAS = -3.2;
/** The slot (by position) that stands for the user: 365 values, so every held-out user has many records. */
export const USER_SLOT = 0;
/** The generator's tasks: the click, and with two tasks the conversion (1 only on a clicked record). */
export const SYNTHETIC_TASKS = [
  { name: "click", loss: "bce", weight: 1 },
  { name: "conversion", loss: "bce", weight: 1 },
] as const satisfies readonly TaskSpec[];

export interface SyntheticOptions {
  seed: number;
  evalRecords: number;
  /** First slot id; slots are slotBase .. slotBase + 25. */
  slotBase?: number;
  /** 1: the click alone (one unnamed task, today's data); 2: click and conversion. */
  tasks?: 1 | 2;
}

/** The conversion's own logistic model (tasks = 2). */
interface ConversionModel {
  denseWeight: Float64Array;
  /** Per slot, per value (index vocab = missing). */
  slotWeight: Float32Array[];
}

interface SlotTables {
  cdf: Float64Array;
  weight: Float32Array; // per value, index vocab = missing
  latent: Float32Array; // [vocab + 1, LATENT]
  idWords: Uint32Array; // [vocab + 1] v2 ids
  tokens: string[] | null; // built lazily for writing files
}

export class SyntheticSource implements DataSource {
  readonly info: SourceDescription;
  private readonly slots: SlotTables[];
  private readonly denseMu: Float64Array;
  private readonly denseSigma: Float64Array;
  private readonly denseWeight: Float64Array;
  private readonly denseCenter: Float64Array;
  private readonly bias: number;
  private readonly seed: number;
  private readonly scratch = new Float64Array(SYNTHETIC_NUM_DENSE);
  private readonly values = new Int32Array(SYNTHETIC_VOCAB.length);
  private readonly conversion: ConversionModel | null;

  constructor(opts: SyntheticOptions) {
    this.seed = opts.seed >>> 0;
    const slotBase = opts.slotBase ?? 1;
    const rng = new Rng(hashWords(this.seed, 0x11));
    this.denseMu = Float64Array.from({ length: SYNTHETIC_NUM_DENSE }, () => rng.uniform(0.5, 4));
    this.denseSigma = Float64Array.from({ length: SYNTHETIC_NUM_DENSE }, () => rng.uniform(0.5, 1.5));
    this.denseWeight = Float64Array.from({ length: SYNTHETIC_NUM_DENSE }, () => rng.normal() * 0.25);
    // E[log1p(exp(mu + sigma z))] is close to mu for these ranges; centring keeps the base rate near target.
    this.denseCenter = Float64Array.from(this.denseMu, (mu) => mu * (1 - MISSING_RATE_DENSE));
    this.bias = -1.45;
    this.slots = SYNTHETIC_VOCAB.map((vocab, s) => this.buildSlot(s, slotBase + s, vocab, rng));
    this.conversion = (opts.tasks ?? 1) === 2 ? this.buildConversion() : null;
    const slotIds = SYNTHETIC_VOCAB.map((_, s) => slotBase + s);
    const evalRecords = opts.evalRecords;
    const gt = evalRecords > 0 ? this.groundTruth(evalRecords) : undefined;
    this.info = {
      featureList: criteoFeatureListConfig("bytes", slotBase),
      description: `synthetic Criteo-like data (seed ${this.seed}, 13 dense + 26 categorical, Zipf ${ZIPF_EXPONENT}${this.conversion ? ", click and conversion" : ""})`,
      numDense: SYNTHETIC_NUM_DENSE,
      slotIds,
      trainRecords: 0,
      evalRecords,
      groundTruth: gt?.[0],
      ...(this.conversion ? { tasks: SYNTHETIC_TASKS.map((t) => ({ ...t })), taskGroundTruth: gt } : {}),
      groupSlot: slotIds[USER_SLOT]!,
    };
  }

  /** How many labels each record carries. */
  get taskCount(): number {
    return this.conversion ? 2 : 1;
  }

  private buildConversion(): ConversionModel {
    const rng = new Rng(hashWords(this.seed, 0x44));
    const denseWeight = Float64Array.from({ length: SYNTHETIC_NUM_DENSE }, () => rng.normal() * 0.25);
    const slotWeight = SYNTHETIC_VOCAB.map((vocab, s) => {
      // The click's pattern of informative and weak slots, shifted by one, so the tasks share some signal and not all.
      const scale = s % 3 === 1 ? 0.45 : s % 3 === 2 ? 0.2 : 0.05;
      return Float32Array.from({ length: vocab + 1 }, (_, v) => new Rng(hashWords(this.seed, 0x45, s, v)).normal() * scale);
    });
    return { denseWeight, slotWeight };
  }

  /**
   * p(conversion | click, x) of the record draw() last drew (its raw dense
   * counts in rawDense, its values in this.values).
   */
  private conversionProbability(m: ConversionModel, rawDense: Float64Array): number {
    let logit = CONVERSION_BIAS;
    for (let j = 0; j < SYNTHETIC_NUM_DENSE; j++) {
      const x = rawDense[j]!;
      logit += m.denseWeight[j]! * (normalizeCount(Number.isNaN(x) ? 0 : x) - this.denseCenter[j]!);
    }
    for (let s = 0; s < m.slotWeight.length; s++) logit += m.slotWeight[s]![this.values[s]!]!;
    return 1 / (1 + Math.exp(-logit));
  }

  /** The conversion label of record `index` of `split`, which draw() last drew: 0 unless clicked. */
  private conversionLabel(m: ConversionModel, split: SplitName, index: number, click: number, rawDense: Float64Array): number {
    if (click === 0) return 0;
    const rng = new Rng(hashWords(this.seed, split === "train" ? 0xc0a1 : 0xc0e1, index));
    return rng.next() < this.conversionProbability(m, rawDense) ? 1 : 0;
  }

  private buildSlot(s: number, slotId: number, vocab: number, rng: Rng): SlotTables {
    // Informative slots alternate with weak ones, as in real logs.
    const scale = s % 3 === 0 ? 0.45 : s % 3 === 1 ? 0.2 : 0.05;
    const cdf = new Float64Array(vocab);
    let total = 0;
    for (let v = 0; v < vocab; v++) {
      total += 1 / Math.pow(v + 1, ZIPF_EXPONENT);
      cdf[v] = total;
    }
    for (let v = 0; v < vocab; v++) cdf[v]! /= total;
    const weight = new Float32Array(vocab + 1);
    const latent = new Float32Array((vocab + 1) * LATENT);
    const idWords = new Uint32Array((vocab + 1) * 2);
    const buf = new Uint8Array(8);
    for (let v = 0; v <= vocab; v++) {
      const r = new Rng(hashWords(this.seed, 0x22, s, v));
      weight[v] = r.normal() * scale;
      for (let k = 0; k < LATENT; k++) latent[v * LATENT + k] = r.normal() * 0.4;
      const len = v === vocab ? 0 : writeToken(this.tokenCode(s, v), buf);
      hashedIdV2(buf, 0, len, slotId, idWords, 2 * v);
    }
    void rng;
    return { cdf, weight, latent, idWords, tokens: null };
  }

  private tokenCode(s: number, v: number): number {
    return hashWords(this.seed, 0x33, s, v);
  }

  /** The raw Criteo-style token (8 lowercase hex digits, "" when missing) of value v of slot s. */
  token(s: number, v: number): string {
    if (v >= SYNTHETIC_VOCAB[s]!) return "";
    return this.tokenCode(s, v).toString(16).padStart(8, "0");
  }

  private recordRng(split: SplitName, index: number): Rng {
    return new Rng(hashWords(this.seed, split === "train" ? 0x7a11 : 0xe7a1, index));
  }

  /**
   * Draws record `index` of `split`: raw dense counts (NaN = missing) into
   * rawDense, value indexes into this.values; returns the true probability.
   */
  private draw(split: SplitName, index: number, rawDense: Float64Array): { p: number; rng: Rng } {
    const rng = this.recordRng(split, index);
    let logit = this.bias;
    for (let j = 0; j < SYNTHETIC_NUM_DENSE; j++) {
      const z = rng.normal();
      const missing = rng.next() < MISSING_RATE_DENSE;
      const x = missing ? Number.NaN : Math.floor(Math.exp(this.denseMu[j]! + this.denseSigma[j]! * z));
      rawDense[j] = x;
      logit += this.denseWeight[j]! * (normalizeCount(missing ? 0 : x) - this.denseCenter[j]!);
    }
    for (let s = 0; s < this.slots.length; s++) {
      const t = this.slots[s]!;
      const u = rng.next();
      const missing = rng.next() < MISSING_RATE_CAT;
      const v = missing ? t.cdf.length : lowerBound(t.cdf, u);
      this.values[s] = v;
      logit += t.weight[v]!;
    }
    for (const [a, b] of INTERACTING_PAIRS) {
      const la = this.slots[a]!.latent;
      const lb = this.slots[b]!.latent;
      const va = this.values[a]! * LATENT;
      const vb = this.values[b]! * LATENT;
      let dot = 0;
      for (let k = 0; k < LATENT; k++) dot += la[va + k]! * lb[vb + k]!;
      logit += dot;
    }
    return { p: 1 / (1 + Math.exp(-logit)), rng };
  }

  read(split: SplitName, start: number, count: number, block: RecordBlock): void {
    const S = this.slots.length;
    if (block.idWords.length < count * S * 2) block.idWords = new Uint32Array(count * S * 2);
    const m = this.conversion;
    if (block.numTasks !== this.taskCount) throw new Error(`a block of ${block.numTasks} labels for a source of ${this.taskCount}`);
    for (let r = 0; r < count; r++) {
      const { p, rng } = this.draw(split, start + r, this.scratch);
      const click = rng.next() < p ? 1 : 0;
      if (m) {
        block.labels[2 * r] = click;
        block.labels[2 * r + 1] = this.conversionLabel(m, split, start + r, click, this.scratch);
      } else block.labels[r] = click;
      for (let j = 0; j < SYNTHETIC_NUM_DENSE; j++) {
        const x = this.scratch[j]!;
        block.dense[r * SYNTHETIC_NUM_DENSE + j] = Number.isNaN(x) ? 0 : normalizeCount(x);
      }
      for (let s = 0; s < S; s++) {
        const cell = r * S + s;
        const v = this.values[s]!;
        block.idWords[2 * cell] = this.slots[s]!.idWords[2 * v]!;
        block.idWords[2 * cell + 1] = this.slots[s]!.idWords[2 * v + 1]!;
        block.cellOffsets[cell] = cell;
      }
    }
    block.cellOffsets[count * S] = count * S;
    block.weights.fill(1, 0, count);
    block.count = count;
    block.nnz = count * S;
  }

  /**
   * Record `index` of `split` in the shape Monolith's formats carry: ids per
   * categorical column C1..C26 (v2, the same ids the in-memory path uses),
   * raw counts per dense column I1..I13 (absent when missing), the labels
   * (the click's, and with two tasks the conversion's).
   */
  plainSample(split: SplitName, index: number): PlainSample {
    const { labels } = this.truth(split, index);
    const ids = new Map<string, Uint32Array>();
    const floats = new Map<string, number[]>();
    for (let j = 0; j < SYNTHETIC_NUM_DENSE; j++) {
      const x = this.scratch[j]!;
      floats.set(criteoDenseName(j), Number.isNaN(x) ? [] : [x]);
    }
    for (let s = 0; s < this.slots.length; s++) {
      const v = this.values[s]!;
      ids.set(criteoSlotName(s), this.slots[s]!.idWords.slice(2 * v, 2 * v + 2));
    }
    return { ids, floats, labels };
  }

  /** The feature list that reads plainSample's data back as this source lays it out. */
  featureListConfig(idKind: "fid_v1" | "fid_v2" | "bytes"): FeatureListConfig {
    // Its records are laid out as Criteo's: I1..I13, C1..C26 in consecutive slots.
    const config = criteoFeatureListConfig(idKind, this.info.slotIds[0]);
    if (!this.conversion) return config;
    const { label: _one, ...rest } = config;
    return { ...rest, labels: SYNTHETIC_TASKS.map((t) => ({ ...t })), groupSlot: this.info.slotIds[USER_SLOT]! };
  }

  /** Record `index` of `split` as a Criteo TSV line: the click's label, I1..I13, C1..C26 (a TSV line has one label). */
  tsvLine(split: SplitName, index: number): string {
    const { p, rng } = this.draw(split, index, this.scratch);
    const label = rng.next() < p ? 1 : 0;
    const fields: string[] = [String(label)];
    for (let j = 0; j < SYNTHETIC_NUM_DENSE; j++) fields.push(Number.isNaN(this.scratch[j]!) ? "" : String(this.scratch[j]));
    for (let s = 0; s < this.slots.length; s++) fields.push(this.token(s, this.values[s]!));
    return fields.join("\t");
  }

  /** How well the generator's own probability of each eval record's label (truth's) ranks those labels, per task. */
  private groundTruth(n: number): { auc: number; logloss: number }[] {
    const p = Array.from({ length: this.taskCount }, () => new Float64Array(n));
    const y = Array.from({ length: this.taskCount }, () => new Uint8Array(n));
    for (let i = 0; i < n; i++) {
      const t = this.truth("eval", i);
      t.p.forEach((pt, k) => (p[k]![i] = pt));
      t.labels.forEach((yt, k) => (y[k]![i] = yt));
    }
    return p.map((pt, k) => aucAndLogloss(pt, y[k]!));
  }

  /**
   * Record `index` of `split`'s labels, one per task, and the generator's
   * probability of each being 1: the click's p(click | x); the conversion's
   * p(click | x) * p(conversion | click, x), its label being 0 on every
   * record not clicked. Leaves the record's raw dense counts in
   * this.scratch and its values in this.values.
   */
  truth(split: SplitName, index: number): { labels: number[]; p: number[] } {
    const m = this.conversion;
    const { p, rng } = this.draw(split, index, this.scratch);
    const click = rng.next() < p ? 1 : 0;
    if (!m) return { labels: [click], p: [p] };
    return { labels: [click, this.conversionLabel(m, split, index, click, this.scratch)], p: [p, p * this.conversionProbability(m, this.scratch)] };
  }
}

function lowerBound(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid]! < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const HEX = [48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102];

/** Writes the 8 lowercase hex digits of a 32-bit code as ASCII, as a Criteo file holds them. */
function writeToken(code: number, out: Uint8Array): number {
  for (let i = 0; i < 8; i++) out[i] = HEX[(code >>> ((7 - i) * 4)) & 15]!;
  return 8;
}
