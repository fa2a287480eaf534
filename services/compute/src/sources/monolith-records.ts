import { compileFeatureList, type FeatureList, type FeatureListConfig } from "@pangea/features";
import { decodeRecordOfKind, FitError, SampleAssembler, WireError, type MessageKind } from "@pangea/monolith";
import { SampleColumns, SampleError, type ColumnsPart } from "./sample-columns.js";

export type { MessageKind };

/**
 * Monolith records (the framed messages of a file) decoded into the record
 * cache's column layout. The parse pass frames the stream, gathers records
 * into pieces and decodes them here, on its own thread or on a parse worker
 * (parse-worker.ts).
 */

/**
 * A piece's samples, how many each record gave, and the records that did not decode: record index in the piece, why,
 * whether framing may be to blame (its bytes were not a message, or decoded to one without a label), and whether the
 * feature list may be (the message decoded, but a feature holds another kind than declared, or too few labels).
 */
export interface MonolithParsed {
  part: ColumnsPart;
  samplesPerRecord: Uint32Array;
  errors: [number, string, boolean, boolean][];
  /** Ids of slots the feature list does not configure, met in this piece. */
  unconfiguredIds: number;
}

/** What a decoder needs: the message kind and the feature list, as plain data (it crosses to workers). */
export interface MonolithDecodeInit {
  message: MessageKind;
  list: FeatureListConfig;
}

/** Decodes pieces: `bytes` holds records end to end, record i ending at ends[i]. */
export class MonolithDecoder {
  private readonly list: FeatureList;
  private readonly asm: SampleAssembler;

  constructor(private readonly init: MonolithDecodeInit) {
    this.list = compileFeatureList(init.list, "feature list");
    this.asm = new SampleAssembler(this.list);
  }

  decode(bytes: Uint8Array, ends: Uint32Array): MonolithParsed {
    const columns = new SampleColumns(this.list);
    const samplesPerRecord = new Uint32Array(ends.length);
    const errors: [number, string, boolean, boolean][] = [];
    const unconfigured = this.asm.unconfiguredIds;
    let start = 0;
    for (let i = 0; i < ends.length; i++) {
      const before = columns.samples;
      try {
        decodeRecord(this.init.message, bytes.subarray(start, ends[i]!), this.asm, columns);
      } catch (err) {
        if (!(err instanceof WireError || err instanceof SampleError)) throw err;
        const misfit = err instanceof FitError || (err instanceof SampleError && err.listMisfit);
        errors.push([i, err.message, (err instanceof WireError && !misfit) || (err instanceof SampleError && err.framingSuspect), misfit]);
      }
      samplesPerRecord[i] = columns.samples - before;
      start = ends[i]!;
    }
    return { part: columns.take(), samplesPerRecord, errors, unconfiguredIds: this.asm.unconfiguredIds - unconfigured };
  }
}

/**
 * Whether `bytes` are a record of `kind` that trains: every sample it holds decodes and commits with its labels, as the
 * parse would take it (not merely some ids: a record that fails as its own kind may still walk as another's fields).
 * Tells a sort id that is itself a record, and a file of another message kind than --format says.
 */
export function trainsAs(kind: MessageKind, bytes: Uint8Array, list: FeatureList): boolean {
  const columns = new SampleColumns(list);
  try {
    decodeRecord(kind, bytes, new SampleAssembler(list), columns);
    return columns.mark().samples > 0;
  } catch (err) {
    if (err instanceof WireError || err instanceof SampleError) return false;
    throw err;
  }
}

/**
 * The message kind a file's first records are of, when it is not `given`: both its first two (one, if the file has
 * one) fail as `given` and train as that kind, so a damaged or unlabelled first record among good ones stays a bad
 * record. An ExampleBatch of one example trains as an Example too: the batch kind is named first.
 */
export function otherKindOf(given: MessageKind, first: Uint8Array, second: Uint8Array | null, list: FeatureList): MessageKind | undefined {
  if (second && trainsAs(given, second, list)) return undefined;
  return (["examplebatch", "example", "instance"] as const).find((k) => k !== given && trainsAs(k, first, list) && (!second || trainsAs(k, second, list)));
}

/** Decodes one record into `columns`: all of its samples, or (throwing WireError or SampleError) none. */
export function decodeRecord(message: MessageKind, bytes: Uint8Array, asm: SampleAssembler, columns: SampleColumns): void {
  // A batch is taken whole or not at all, so a bad example cannot leave half a batch behind.
  const mark = columns.mark();
  let example = 0;
  try {
    decodeRecordOfKind(message, bytes, asm, () => {
      columns.commit(asm);
      example++;
    });
  } catch (err) {
    columns.rollback(mark);
    // Which of the batch's examples, so the record can be found.
    if (message === "examplebatch" && err instanceof SampleError) throw new SampleError(`example ${example} of the batch ${err.message}`);
    throw err;
  }
}
