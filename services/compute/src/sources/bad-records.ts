import { ComputeErrors } from "../errors.js";
import type { StreamDamage } from "../formats/byte-stream.js";

export type BadRecordPolicy = "fail" | "skip";

/**
 * Applies --on-bad-record: "fail" turns the first bad record or damaged
 * stretch into an error naming file and byte offset; "skip" counts it by
 * reason and goes on. Either way nothing is dropped silently: what was
 * skipped appears in the source's description and the job summary.
 *
 * Three kinds are counted apart, because they cost different things: a bad
 * record (read whole, refused: one record), a damaged stretch (bytes a
 * framing or decompressor could not read: the records in it, a number no
 * one can know), and ignored bytes (after a file's whole compressed data:
 * no record).
 */
export class BadRecords {
  /** Records read whole and refused. */
  records = 0;
  /** Stretches of bytes that could not be read, to the next readable record or to the end of the file. */
  stretches = 0;
  /** Bytes in those stretches. */
  lostBytes = 0;
  /** Bytes after a file's whole compressed data (trailing garbage), which hold no records. */
  ignoredBytes = 0;
  /** Records that did not parse before a compressed file's data was found damaged: its wrong output, not bad records. */
  wrongOutputRecords = 0;
  /** Skipped records by reason: messages alike but for their values (see ReasonGroup). */
  private readonly reasons = new Reasons();
  /** What each file had, in the order the files were met. */
  private readonly files = new Map<string, FileEvents>();
  /** The compression of each compressed file opened: its bad records may be a damaged stream's wrong bytes. */
  private readonly compressions = new Map<string, string>();
  /** A compressed file's bad records, held until its stream ends (see record). */
  private readonly held = new Map<string, HeldRecords>();
  /** Samples kept from each file read through (the pass says, in input order). */
  private readonly kept = new Map<string, number>();
  /** Damaged stretches whose records are known (a Parquet row group's rows), and those records. */
  private countedStretches = 0;
  private stretchRecords = 0;
  firstExample = "";
  /** The first example is a held record's, which may yet be taken as wrong output: the event noted after it, if any. */
  private firstHeldOpen = false;
  private afterHeldFirst = "";

  /**
   * `givenAs`: what a file of which nothing was kept is asked to be in (the summary's question), e.g. "the format
   * and framing given"; a source reading with a feature list adds it, since records that decode may not fit it.
   */
  constructor(
    readonly policy: BadRecordPolicy,
    private readonly givenAs = "the format and framing given",
  ) {}

  /** Bad records and damaged stretches: what the job lost, for the counts that predate telling them apart. */
  get skipped(): number {
    return this.records + this.stretches;
  }

  /** A file is read with `compression` ("none" for a plain one); a compressed file's reader calls fileRead when its stream ends. */
  compressedAs(file: string, compression: string): void {
    if (compression !== "none") this.compressions.set(file, compression);
  }

  /** A record read whole that could not be used; the place is `${file}${at}` ("f.pb: record at byte N", "f.tsv:12 (byte N)"). */
  record(file: string, at: string, reason: string, code: "COMPUTE_ERR_BAD_RECORD" | "COMPUTE_ERR_BAD_FRAME" = "COMPUTE_ERR_BAD_RECORD"): void {
    const compression = this.compressions.get(file);
    // Damage to compressed bytes shows first as wrong records (a decompressor gives wrong bytes until the checksum at the
    // end of its member or frame says so): skipping them would keep the rest of the damaged output too.
    const checker = compression ? CHECKERS[compression] : undefined;
    const check = checker ? `; if ${file}'s ${compression} data is damaged, such records come before its checksum says so: check it first (${checker} ${file})` : "";
    this.fail(file, at, reason, code, `--on-bad-record=skip counts and skips such records${check}`);
    if (!compression) return this.badRecord(file, at, reason);
    // Counted once the stream's end says whether its data is damaged (streamDamage) or not (fileRead).
    let held = this.held.get(file);
    if (!held) this.held.set(file, (held = new HeldRecords(`${file}${at}`)));
    held.reasons.add(reason);
    held.count++;
    if (!this.firstExample) {
      this.firstExample = `${file}${at}: ${reason}`;
      held.first = true;
      this.firstHeldOpen = true;
    }
  }

  private badRecord(file: string, at: string, reason: string): void {
    this.records++;
    this.note(file, at, reason, "records");
  }

  /** The framing lost its place: `lostBytes` were skipped, to where reading resumed (or to the end of the file). */
  lost(file: string, at: string, reason: string, lostBytes: number, resumeAt: string | null, lostRecords?: number): void {
    const after = resumeAt !== null ? `${lostBytes} bytes skipped to the next readable record at ${resumeAt}` : lostBytes > 0 ? `${lostBytes} bytes to the end unreadable` : "the file ends there";
    this.stretch(file, at, reason, after, lostBytes, resumeAt !== null ? SKIP_TO_NEXT : SKIP_TO_END);
    // A Parquet row group knows its rows: said in the summary when every stretch's are known.
    if (lostRecords !== undefined) {
      this.countedStretches++;
      this.stretchRecords += lostRecords;
    }
  }

  /**
   * Damage a file's stream ran into at `place` ("byte N (decompressed byte M)"): bytes after its whole compressed data
   * are ignored; anything else loses the rest of the file. `framingLoss`: where the framing, reading the damaged stream,
   * lost its place with nothing readable after it (a record the damage cut, or the decompressor's wrong output before
   * it noticed): one stretch with the damage.
   */
  streamDamage(file: string, place: string, damage: StreamDamage, fileSize: number, framingLoss: FramingLoss | null = null): void {
    const bytes = Math.max(0, fileSize - damage.fileOffset);
    const toEnd = bytes > 0 ? `${bytes} bytes to the end unreadable` : "the file ends there";
    // A damaged stream's wrong output cannot be told from bad records: the file's records that did not parse go with it.
    const held = damage.wrongOutput ? this.takeHeld(file) : null;
    const wrong = held ? `; the ${held.count === 1 ? "record" : `${held.count} records`} before it that did not parse (from ${held.from} on) ${held.count === 1 ? "is" : "are"} taken as its wrong output, not bad records` : "";
    if (!damage.afterData && framingLoss) {
      const reason = `${framingLoss.reason} (${framingLoss.bytes} decompressed bytes to the end unreadable), then at ${place}: ${damage.message} (${toEnd}${wrong})`;
      return this.stretch(file, `: ${framingLoss.place}`, reason, "", bytes + framingLoss.bytes, SKIP_TO_END, held);
    }
    if (!damage.afterData) return this.stretch(file, `: ${place}`, damage.message, `${toEnd}${wrong}`, bytes, SKIP_TO_END, held);
    this.fail(file, `: ${place}`, damage.message, "COMPUTE_ERR_BAD_FRAME", "--on-bad-record=skip ignores those bytes");
    this.ignoredBytes += bytes;
    this.note(file, `: ${place}`, `${damage.message} (${bytes} bytes to the end ignored: every record before them was read)`, "ignored");
  }

  /** The pass has read `file` through, keeping `samples` from it: a compressed file's held bad records are counted as such. */
  fileRead(file: string, samples: number): void {
    this.kept.set(file, samples);
    const held = this.takeHeld(file);
    if (!held) return;
    if (held.first) this.firstHeldOpen = false;
    this.records += held.count;
    this.reasons.merge(held.reasons);
    this.events(file).records += held.count;
  }

  private takeHeld(file: string): HeldRecords | null {
    const held = this.held.get(file) ?? null;
    this.held.delete(file);
    return held;
  }

  /** A damaged stretch of `bytes` at `${file}${at}`: `reason` says why, `after` (in the summary) how far it runs. */
  private stretch(file: string, at: string, reason: string, after: string, bytes: number, hint: string, wrongOutput: HeldRecords | null = null): void {
    this.fail(file, at, reason, "COMPUTE_ERR_BAD_FRAME", hint);
    this.stretches++;
    this.lostBytes += bytes;
    const text = after ? `${reason} (${after})` : reason;
    if (wrongOutput) {
      this.wrongOutputRecords += wrongOutput.count;
      // The first event was one of those records: it is the event after it now, or this damage.
      if (wrongOutput.first) {
        this.firstExample = this.afterHeldFirst || `${file}${at}: ${text}`;
        this.firstHeldOpen = false;
      }
    }
    this.note(file, at, text, "stretches");
  }

  private fail(file: string, at: string, reason: string, code: "COMPUTE_ERR_BAD_RECORD" | "COMPUTE_ERR_BAD_FRAME", hint: string): void {
    if (this.policy === "fail") throw ComputeErrors.create(code, `${file}${at}: ${reason}`, { hint });
  }

  /** One event of `kind`; any but a bad record is damage to the file's bytes. */
  private note(file: string, at: string, reason: string, kind: keyof FileEvents): void {
    this.reasons.add(reason, kind !== "records");
    this.events(file)[kind]++;
    if (!this.firstExample) this.firstExample = `${file}${at}: ${reason}`;
    else if (this.firstHeldOpen && !this.afterHeldFirst) this.afterHeldFirst = `${file}${at}: ${reason}`;
  }

  private events(file: string): FileEvents {
    let events = this.files.get(file);
    if (!events) this.files.set(file, (events = { records: 0, stretches: 0, ignored: 0 }));
    return events;
  }

  /**
   * One line: what was skipped or ignored, the `kept` samples read, each reason with its count (damage to the files'
   * bytes first, then the most frequent), the files with their counts when more than one had any, and the first event
   * in full.
   */
  summary(kept: number): string {
    if (this.files.size === 0) return "";
    const it = this.stretches === 1 ? "it" : "them";
    const wrong = this.wrongOutputRecords ? `${this.wrongOutputRecords} ${this.wrongOutputRecords === 1 ? "record" : "records"} of wrong output that did not parse, ` : "";
    const done = [
      this.records ? `${this.records} bad ${this.records === 1 ? "record" : "records"} skipped` : "",
      this.stretches
        ? `${this.stretches} damaged ${this.stretches === 1 ? "stretch" : "stretches"} skipped (${this.lostBytes ? `${this.lostBytes} bytes; ` : ""}${
            this.countedStretches === this.stretches ? `${this.stretchRecords} ${this.stretchRecords === 1 ? "record" : "records"} in ${it}` : `${wrong}${wrong ? "other " : "the "}records in ${it} are not counted`
          })`
        : "",
      this.ignoredBytes ? `${this.ignoredBytes} bytes of trailing garbage ignored` : "",
      `${kept} ${kept === 1 ? "sample" : "samples"} kept`,
    ].filter(Boolean);
    // Damage first: a stream's damage can come after bad records that were not its wrong output (a stream damaged in
    // another member than theirs), and must not be lost among them.
    const groups = this.reasons.groups().sort((a, b) => Number(b.damage) - Number(a.damage) || b.count - a.count);
    const shown = groups.slice(0, MAX_REASONS_SHOWN).map((g) => `${g.count} x ${g.text()}`);
    const rest = groups.slice(MAX_REASONS_SHOWN);
    if (rest.length) shown.push(`${rest.reduce((n, g) => n + g.count, 0)} x ${rest.length} other reasons`);
    const files = [...this.files];
    const byFile = files.length > 1 ? `; in ${fileList(files.map(([f, e]) => `${f} (${eventsText(e)})`))}` : "";
    // A file in another format than the one given reads as nothing but damage: named, whatever the other files gave.
    const barren = files.filter(([f]) => this.kept.get(f) === 0).map(([f]) => f);
    const nothing = barren.length ? `; no sample kept from ${fileList(barren)} (is ${barren.length === 1 ? "it" : "each"} in ${this.givenAs}?)` : "";
    return `${done.join(", ")}: ${shown.join("; ")}${byFile}${nothing}; first: ${this.firstExample}`;
  }
}

/** Where a framing lost its place for good in a file whose stream is damaged (see BadRecords.streamDamage). */
export interface FramingLoss {
  /** Where, in the decompressed stream ("decompressed byte N"). */
  place: string;
  reason: string;
  bytes: number;
}

/** What one file had: bad records, damaged stretches, trailing garbage. */
interface FileEvents {
  records: number;
  stretches: number;
  ignored: number;
}

function eventsText(e: FileEvents): string {
  return [
    e.records ? `${e.records} bad ${e.records === 1 ? "record" : "records"}` : "",
    e.stretches ? `${e.stretches} damaged ${e.stretches === 1 ? "stretch" : "stretches"}` : "",
    e.ignored ? "trailing garbage" : "",
  ]
    .filter(Boolean)
    .join(", ");
}

/**
 * A compressed file's bad records until its stream ends: a decompressor gives wrong bytes from the damage until a
 * checksum (at its member's or frame's end) says so, and records that do not parse then are that output, not bad
 * records. Neither the damage's place nor the member boundaries of a gzip file are known, so all the file's are held.
 */
class HeldRecords {
  count = 0;
  readonly reasons = new Reasons();
  /** The file's first held record is the pass's first event. */
  first = false;

  constructor(
    /** Where the first of them is. */
    readonly from: string,
  ) {}
}

/** Reasons counted by kind: messages alike but for their values (see ReasonGroup). */
class Reasons {
  private readonly byKey = new Map<string, ReasonGroup>();

  /** `damage`: a damaged stretch or ignored bytes, not a bad record. */
  add(reason: string, damage = false): void {
    const values: string[] = [];
    const key = reason.replace(VALUE, (v) => (values.push(v), "\0"));
    const group = this.byKey.get(key);
    if (group) group.add(values);
    else this.byKey.set(key, new ReasonGroup(key, values, damage));
  }

  merge(other: Reasons): void {
    for (const [key, group] of other.byKey) {
      const mine = this.byKey.get(key);
      if (mine) mine.merge(group);
      else this.byKey.set(key, group);
    }
  }

  groups(): ReasonGroup[] {
    return [...this.byKey.values()];
  }
}

/** How to check a compressed file whole, for the compressions with a checksum of their data. */
const CHECKERS: Readonly<Record<string, string>> = { gzip: "gzip -t", zstd: "zstd -t" };

const SKIP_TO_NEXT = "--on-bad-record=skip skips the damaged bytes and reads on from the next readable record";
const SKIP_TO_END = "--on-bad-record=skip keeps the records before the damage (nothing after it can be read)";

/** A reason's values: quoted ones ('2', "abc") and numbers standing alone (not the digits of a name such as I2 or C26). */
const VALUE = /'[^']*'|"[^"]*"|(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])/g;
const MAX_REASONS_SHOWN = 8;
const MAX_FILES_SHOWN = 8;

/** Files named in a summary: the first MAX_FILES_SHOWN, then how many more. */
function fileList(items: readonly string[]): string {
  const rest = items.length - MAX_FILES_SHOWN;
  return `${items.slice(0, MAX_FILES_SHOWN).join(", ")}${rest > 0 ? ` and ${rest} more files` : ""}`;
}

/**
 * Skipped records whose reasons differ only in their values (label '2' and
 * label 'x7' must be 0 or 1): counted together, and shown with the values
 * they all share as they are and the others as N (a number) or '…' (a
 * quoted value), so a reason reads as written when every record had it.
 */
class ReasonGroup {
  count = 1;
  private readonly values: string[];
  private readonly varies: boolean[];

  constructor(
    private readonly key: string,
    values: string[],
    /** Damage to the file's bytes (a stretch, ignored bytes), listed before bad records. */
    readonly damage: boolean,
  ) {
    this.values = values;
    this.varies = values.map(() => false);
  }

  add(values: readonly string[]): void {
    this.count++;
    this.compare(values);
  }

  /** Another's records with the same reason (their `key` is this one's). */
  merge(other: ReasonGroup): void {
    this.count += other.count;
    this.compare(other.values);
    other.varies.forEach((v, i) => {
      if (v) this.varies[i] = true;
    });
  }

  private compare(values: readonly string[]): void {
    values.forEach((v, i) => {
      if (v !== this.values[i]) this.varies[i] = true;
    });
  }

  text(): string {
    let i = 0;
    return this.key.replace(/\0/g, () => {
      const k = i++;
      const v = this.values[k]!;
      if (!this.varies[k]) return v;
      return v.startsWith("'") ? "'…'" : v.startsWith('"') ? '"…"' : "N";
    });
  }
}
