import { ComputeErrors } from "../errors.js";

export type BadRecordPolicy = "fail" | "skip";

/**
 * Applies --on-bad-record: "fail" turns the first bad record into an error
 * naming file and byte offset; "skip" counts it by reason and goes on. Either
 * way nothing is dropped silently: skipped records appear in the source's
 * description and the job summary.
 */
export class BadRecords {
  skipped = 0;
  lostBytes = 0;
  /** Skipped records by reason: messages alike but for their values (see ReasonGroup). */
  private readonly reasons = new Map<string, ReasonGroup>();
  firstExample = "";

  constructor(readonly policy: BadRecordPolicy) {}

  /** A record that could not be used; `where` is "file: byte N". */
  record(where: string, reason: string, code: "COMPUTE_ERR_BAD_RECORD" | "COMPUTE_ERR_BAD_FRAME" = "COMPUTE_ERR_BAD_RECORD"): void {
    if (this.policy === "fail") throw ComputeErrors.create(code, `${where}: ${reason}`, { hint: "--on-bad-record=skip counts and skips such records" });
    this.skipped++;
    const values: string[] = [];
    const key = reason.replace(VALUE, (v) => (values.push(v), "\0"));
    const group = this.reasons.get(key);
    if (group) group.add(values);
    else this.reasons.set(key, new ReasonGroup(key, values));
    if (!this.firstExample) this.firstExample = `${where}: ${reason}`;
  }

  /** The framing lost its place: `lostBytes` were skipped, to where reading resumed (or to the end of the file). */
  lost(where: string, reason: string, lostBytes: number, resumeAt: number | null): void {
    if (this.policy === "fail") throw ComputeErrors.create("COMPUTE_ERR_BAD_FRAME", `${where}: ${reason}`, { hint: "--on-bad-record=skip skips the damaged bytes and reads on from the next readable record" });
    this.lostBytes += lostBytes;
    const after = resumeAt === null ? `${lostBytes} bytes to the end unreadable` : `${lostBytes} bytes skipped to the next readable record at byte ${resumeAt}`;
    this.record(where, `${reason} (${after})`, "COMPUTE_ERR_BAD_FRAME");
  }

  /** One line: the count, each reason with its count (the most frequent first), and the first bad record in full. */
  summary(): string {
    if (this.skipped === 0) return "";
    const groups = [...this.reasons.values()].sort((a, b) => b.count - a.count);
    const shown = groups.slice(0, MAX_REASONS_SHOWN).map((g) => `${g.count} x ${g.text()}`);
    const rest = groups.slice(MAX_REASONS_SHOWN);
    if (rest.length) shown.push(`${rest.reduce((n, g) => n + g.count, 0)} x ${rest.length} other reasons`);
    return `${this.skipped} bad records skipped${this.lostBytes ? `, ${this.lostBytes} bytes unreadable` : ""}: ${shown.join("; ")}; first: ${this.firstExample}`;
  }
}

/** A reason's values: quoted ones ('2', "abc") and numbers standing alone (not the digits of a name such as I2 or C26). */
const VALUE = /'[^']*'|"[^"]*"|(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])/g;
const MAX_REASONS_SHOWN = 8;

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
  ) {
    this.values = values;
    this.varies = values.map(() => false);
  }

  add(values: readonly string[]): void {
    this.count++;
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
