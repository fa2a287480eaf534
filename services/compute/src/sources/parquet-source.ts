import { readFileSync } from "node:fs";
import { parquetMetadata, parquetReadObjects } from "hyparquet";
import { ComputeErrors } from "../errors.js";
import { BadRecords, type BadRecordPolicy } from "./bad-records.js";
import { SampleColumns, SampleError } from "./sample-columns.js";
import type { DataSource, RecordBlock, SourceDescription, SplitName } from "./source.js";
import { bigIntToWords, labelValue, normalizeCount, targetOutOfRange, tasksOfList, type FeatureList, type SlotKind } from "@pangea/features";
import { SampleAssembler, WireError } from "@pangea/monolith";

export interface ParquetOptions {
  paths: readonly string[];
  featureList: FeatureList;
  evalFraction: number;
  onBadRecord: BadRecordPolicy;
}

const utf8 = new TextEncoder();

/**
 * Parquet files whose columns are named as the feature list's features:
 * slot features hold strings or bytes (type bytes, hashed), integers (type
 * int64, hashed) or fids (fid_v1/fid_v2; one id or a list); dense features
 * hold numbers; the label column holds 0/1 (anything > 0 is a click). A null
 * slot value gives the cell no id; a null dense value reads as 0.
 */
export class ParquetSource implements DataSource {
  readonly info: SourceDescription;

  private constructor(private readonly columns: SampleColumns, info: SourceDescription) {
    this.info = info;
  }

  static async open(opts: ParquetOptions): Promise<ParquetSource> {
    const list = opts.featureList;
    const bad = new BadRecords(opts.onBadRecord);
    const columns = new SampleColumns(list);
    const asm = new SampleAssembler(list);
    const wanted = [...new Set([...list.labels.map((l) => l.column), ...list.slotByName.keys(), ...list.denseByName.keys()])];
    for (const path of opts.paths) {
      let rows: Record<string, unknown>[];
      try {
        const buf = readFileSync(path);
        const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
        const meta = parquetMetadata(file);
        const present = new Set(meta.schema.map((e) => e.name));
        const missing = wanted.filter((c) => !present.has(c));
        if (missing.length) {
          throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${path}: the feature list names columns the Parquet file lacks: ${missing.join(", ")}`);
        }
        rows = (await parquetReadObjects({ file, columns: wanted })) as Record<string, unknown>[];
      } catch (err) {
        if (ComputeErrors.is(err)) throw err;
        const code = (err as NodeJS.ErrnoException).code;
        throw ComputeErrors.create(code ? "COMPUTE_ERR_SOURCE" : "COMPUTE_ERR_BAD_FRAME", `cannot read Parquet file ${path}: ${code ?? (err as Error).message}`);
      }
      rows.forEach((row, i) => {
        try {
          fillSample(row, asm);
          columns.commit(asm);
        } catch (err) {
          if (!(err instanceof RowError || err instanceof SampleError || err instanceof WireError)) throw err;
          bad.record(`${path}: row ${i}`, err.message);
        }
      });
    }
    if (columns.samples === 0) throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `no usable rows in ${opts.paths.join(", ")}${bad.skipped ? ` (${bad.summary()})` : ""}`);
    const evalCount = Math.min(columns.samples - 1, Math.round(columns.samples * opts.evalFraction));
    columns.setTrainCount(columns.samples - evalCount);
    return new ParquetSource(columns, {
      description: `Parquet ${opts.paths.join(", ")}: ${columns.samples} rows`,
      numDense: list.numDense,
      slotIds: list.slotIds,
      slotDims: list.config.slots.map((s) => s.dim ?? 0),
      slotPooling: list.config.slots.map((s) => s.pooling ?? ""),
      tasks: tasksOfList(list),
      groupSlot: list.groupSlot,
      trainRecords: columns.samples - evalCount,
      evalRecords: evalCount,
      skippedRecords: bad.skipped,
      skippedSummary: bad.summary(),
    });
  }

  read(split: SplitName, start: number, count: number, block: RecordBlock): void {
    this.columns.read(split, start, count, block);
  }
}

class RowError extends Error {}

const words = new Uint32Array(2);

function fillSample(row: Record<string, unknown>, asm: SampleAssembler): void {
  const list = asm.list;
  asm.reset();
  for (const l of list.labels) {
    const raw = row[l.column];
    if (raw === null || raw === undefined) throw new RowError(`label column '${l.column}' is null`);
    if (Number.isNaN(labelValue(l, raw))) {
      const far = targetOutOfRange(l, raw);
      throw new RowError(far ? `label column '${l.column}' ${far}` : `label column '${l.column}' holds ${typeof raw === "string" ? JSON.stringify(raw) : String(raw)}, expected a number`);
    }
    asm.labels[l.index] = Number(raw);
  }
  for (const [name, s] of list.slotByName) {
    const v = row[name];
    if (v === null || v === undefined) continue;
    for (const item of Array.isArray(v) ? v : [v]) addValue(asm, name, s, item);
  }
  for (const [name, d] of list.denseByName) {
    const v = row[name];
    const values = v === null || v === undefined ? [] : Array.isArray(v) ? v : [v];
    values.slice(0, d.size).forEach((x, k) => {
      const n = Number(x);
      if (!Number.isFinite(n)) throw new RowError(`dense column '${name}' holds ${String(x)}`);
      asm.dense[d.offset + k] = d.log1p ? normalizeCount(n) : n;
    });
  }
}

function addValue(asm: SampleAssembler, name: string, s: { column: number; slot: number; kind: SlotKind }, v: unknown): void {
  if (s.kind === "bytes") {
    const bytes = typeof v === "string" ? utf8.encode(v) : v instanceof Uint8Array ? v : null;
    if (!bytes) throw new RowError(`column '${name}' (type bytes) holds a ${typeof v}`);
    asm.addRaw(bytes, 0, bytes.length, s.column, s.slot);
    return;
  }
  let big: bigint;
  if (typeof v === "bigint") big = v;
  else if (typeof v === "number" && Number.isInteger(v)) big = BigInt(v);
  else throw new RowError(`column '${name}' (type ${s.kind}) holds ${typeof v === "number" ? v : `a ${typeof v}`}, expected an integer`);
  bigIntToWords(big, words, 0);
  asm.addInteger(s, words[0]!, words[1]!);
}
