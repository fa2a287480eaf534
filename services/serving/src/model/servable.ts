import { firstNonFinite, MAX_MANIFEST_BYTES, printable, readChecked, readRegularFile } from "@pangea/kit";
import { randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { EXPORT_FORMAT, RowLayout, SUPPORTED_EXPORT_SCHEMA_VERSIONS, denseParams, modelIdentity, storedParamsDifference, parseModelSpec, rowWidths, tasksOf, type ExportManifest, type ModelSpec, type TaskSpec } from "@pangea/model";
import { ServingErrors } from "../errors.js";
import { RowTable, type RowTableView } from "./row-table.js";
import { Scorer, type Examples } from "./scorer.js";
import { rawLayoutOf, type RawLayout } from "./raw-layout.js";
import { featureListMismatch, loadFeatureList, type FeatureList } from "@pangea/features";

export type { Examples } from "./scorer.js";

/** What a forward thread needs to run a version: its model, row widths, tables (in slot order) and dense weights. */
export interface ServableView {
  model: unknown;
  rowWidths: number[];
  tables: RowTableView[];
  /** Left out when the thread already has this generation's weights. */
  dense?: Float32Array[];
}

/** The job and step a version was exported from, as its manifest records them. */
export interface VersionSource {
  jobId: string;
  step: number;
  checkpoint: string;
  exportedAt: string;
}

/** A manifest's source, when it has one of the expected shape (it is informational: a version without one still serves). */
function sourceOf(m: ExportManifest): VersionSource | null {
  const src = m.source as Partial<ExportManifest["source"]> | undefined;
  if (typeof src !== "object" || src === null) return null;
  const { jobId, step, checkpoint } = src;
  if (typeof jobId !== "string" || typeof checkpoint !== "string" || !Number.isSafeInteger(step) || step! < 0) return null;
  return { jobId: printable(jobId, 200), step: step!, checkpoint: printable(checkpoint, 1000), exportedAt: typeof m.createdAt === "string" ? printable(m.createdAt, 64) : "" };
}

/**
 * One loaded model version: its dense weights and embedding rows, checked
 * against the manifest's sizes and SHA-256 sums, refused if the export's
 * format or schema version is not one this build reads.
 */
export class Servable {
  readonly spec: ModelSpec;
  /** The model's tasks, in output order: predict gives one value per task per example. */
  readonly tasks: TaskSpec[];
  /** The model's modelIdentity: what a parameter sync update's model must be to apply here. */
  readonly identity: string;
  /** Each slot's row width (its embedding dim plus what the architecture keeps per id), in slot order. */
  readonly rowWidths: number[];
  /** An id's row width by its slot: how parameter sync's rows sit side by side. */
  readonly layout: RowLayout;
  readonly slotIds: number[];
  dense: Float32Array[];
  private scorer!: Scorer;
  readonly tables = new Map<number, RowTable>();
  /** Decodes Monolith Instance/Example/ExampleBatch inputs; null if the version was exported without a feature list. */
  featureList: FeatureList | null = null;
  /** How raw feature values become this version's inputs; null if it takes none (no feature list, not Criteo's layout). */
  rawLayout: RawLayout | null = null;
  /** The tables in the model's slot order. */
  private columnTables: RowTable[] = [];
  /** Where the version came from (its manifest's job, step, checkpoint and export time); null where the manifest does not say. */
  readonly source: VersionSource | null;
  /** Rows replaced or removed by parameter sync since loading. */
  synced = { rows: 0, tombstones: 0, dense: 0, lastAt: 0, sender: "" };
  /**
   * This load of the version, in parameter sync's acks: synced rows live in memory, so another load (a restarted
   * serving, a version loaded from disk) holds none of the updates sent to this one, and a sender seeing another
   * load id sends its whole table again.
   */
  readonly loadId = randomUUID();
  /** Bumped by each parameter sync update (rows) and each dense one: forward threads behind it are sent the new state before their next pass. */
  generation = 0;
  denseGeneration = 0;

  private constructor(readonly version: number, readonly dir: string, readonly manifest: ExportManifest, spec: ModelSpec, dense: Float32Array[]) {
    this.spec = spec;
    this.tasks = tasksOf(spec);
    this.identity = modelIdentity(spec);
    this.rowWidths = rowWidths(spec);
    this.slotIds = manifest.slotIds;
    this.layout = new RowLayout(this.slotIds, this.rowWidths);
    this.dense = dense;
    this.source = sourceOf(manifest);
  }

  static load(dir: string, version: number): Servable {
    const bad = (msg: string) => ServingErrors.create("SERVING_ERR_BAD_EXPORT", `model version ${version} at ${dir}: ${msg}`);
    const manifestPath = join(dir, "manifest.json");
    const text = readRegularFile(manifestPath, "manifest.json", bad, { maxBytes: MAX_MANIFEST_BYTES }).toString("utf8");
    let m: ExportManifest;
    try {
      m = JSON.parse(text) as ExportManifest;
    } catch (err) {
      throw bad(`manifest.json is not valid JSON: ${printable((err as Error).message, 160)}`);
    }
    if (m.format !== EXPORT_FORMAT) throw bad(`format "${m.format}" is not ${EXPORT_FORMAT}`);
    if (!SUPPORTED_EXPORT_SCHEMA_VERSIONS.includes(m.schemaVersion)) throw bad(`schema version ${m.schemaVersion} is not one this server reads (${SUPPORTED_EXPORT_SCHEMA_VERSIONS.join(", ")})`);
    // A version's number is in its manifest (and its files' checksums with it): a copy under another number is a
    // mistake to name, with the way to make the version wanted.
    if (m.version !== version) {
      const from = typeof m.source?.checkpoint === "string" ? `pangea export --checkpoint ${m.source.checkpoint} --out ${dirname(dir)} --version ${version}` : `pangea export --version ${version} from its checkpoint`;
      throw bad(`manifest says version ${m.version}, the directory ${version}: a version copied to another number keeps its own; remove ${dir}, then write version ${version} with ${from}`);
    }
    let spec: ModelSpec;
    try {
      spec = parseModelSpec(m.model);
    } catch (err) {
      throw bad(`model: ${(err as Error).message}`);
    }
    if (!Array.isArray(m.slotIds) || m.slotIds.length !== spec.numSlots) throw bad(`slot ids ${JSON.stringify(m.slotIds)} do not match the model's ${spec.numSlots} slots`);
    const changed = storedParamsDifference(m.denseParams, spec);
    if (changed?.corrupt) throw bad(changed.text);
    if (changed) throw bad(`${changed.text}: the architecture's definition changed since this version was exported; serve it with the build that exported it`);
    const read = (name: string): Buffer => readChecked(dir, name, m.files, bad);
    const f32 = (b: Buffer) => new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const u32 = (b: Buffer) => new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const params = denseParams(spec);
    const flat = f32(read("dense.f32"));
    const dense: Float32Array[] = [];
    let at = 0;
    for (const p of params) {
      const n = p.shape.reduce((a, b) => a * b, 1);
      dense.push(flat.slice(at, at + n));
      at += n;
    }
    if (at !== flat.length) throw bad(`dense.f32 holds ${flat.length} values, the model needs ${at}`);
    const badDense = firstNonFinite(flat);
    if (badDense >= 0) throw bad(`dense.f32 holds ${flat[badDense]} at value ${badDense}; a version with non-finite weights would answer NaN`);
    const s = new Servable(version, dir, m, spec, dense);
    if (m.featureList) {
      read(m.featureList); // checksummed like every file
      let list: FeatureList;
      try {
        list = loadFeatureList(join(dir, m.featureList));
      } catch (err) {
        throw bad(`feature list: ${(err as Error).message}`);
      }
      const mismatch = featureListMismatch(list, m.slotIds, spec.numDense);
      if (mismatch) throw bad(mismatch);
      s.featureList = list;
    }
    s.rawLayout = rawLayoutOf(s.featureList, spec, m.slotIds);
    m.slotIds.forEach((slot, k) => s.tables.set(slot, new RowTable(s.rowWidths[k]!)));
    for (const t of m.tables) {
      const k = m.slotIds.indexOf(t.slot);
      if (k < 0) throw bad(`table of slot ${t.slot}, which the model does not have`);
      if (t.dim !== s.rowWidths[k]) throw bad(`slot ${t.slot} has rows of ${t.dim} values, the model ${s.rowWidths[k]}`);
      const ids = u32(read(`slot-${t.slot}.ids.u64`));
      const rows = f32(read(`slot-${t.slot}.rows.f32`));
      if (ids.length !== 2 * t.rows || rows.length !== t.rows * t.dim) throw bad(`slot ${t.slot}'s files do not hold ${t.rows} rows`);
      const badRow = firstNonFinite(rows);
      if (badRow >= 0) throw bad(`slot-${t.slot}.rows.f32 holds ${rows[badRow]} in row ${Math.floor(badRow / t.dim)}; a version with non-finite weights would answer NaN`);
      const table = new RowTable(t.dim, t.rows);
      for (let r = 0; r < t.rows; r++) table.set(ids[2 * r]!, ids[2 * r + 1]!, rows, r * t.dim);
      s.tables.set(t.slot, table);
    }
    s.columnTables = m.slotIds.map((slot) => s.tables.get(slot)!);
    s.scorer = new Scorer(spec, s.rowWidths, s.columnTables, dense, s.tasks.length);
    return s;
  }

  get rowCount(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.size;
    return n;
  }

  /** Replaces the dense weights (parameter sync); requests after this see the new ones. */
  setDense(values: Float32Array[]): void {
    this.dense = values;
    this.scorer.setDense(values);
    this.denseGeneration++;
  }

  /** The examples' predictions [count, T] row-major: per task, a probability (bce) or a value (mse). */
  predict(x: Examples): Float32Array {
    return this.scorer.predict(x);
  }

  /** The state a forward thread runs this version with (its dense weights only when `withDense`). */
  view(withDense: boolean): ServableView {
    return { model: this.manifest.model, rowWidths: this.rowWidths, tables: this.columnTables.map((t) => t.view()), ...(withDense ? { dense: this.dense } : {}) };
  }
}
