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
  readonly reasons = new Map<string, number>();
  firstExample = "";

  constructor(readonly policy: BadRecordPolicy) {}

  /** A record that could not be used; `where` is "file: byte N". */
  record(where: string, reason: string, code: "COMPUTE_ERR_BAD_RECORD" | "COMPUTE_ERR_BAD_FRAME" = "COMPUTE_ERR_BAD_RECORD"): void {
    if (this.policy === "fail") throw ComputeErrors.create(code, `${where}: ${reason}`, { hint: "--on-bad-record=skip counts and skips such records" });
    this.skipped++;
    const key = reason.replace(/\d+/g, "N");
    this.reasons.set(key, (this.reasons.get(key) ?? 0) + 1);
    if (!this.firstExample) this.firstExample = `${where}: ${reason}`;
  }

  /** The framing lost its place: `lostBytes` were skipped, to where reading resumed (or to the end of the file). */
  lost(where: string, reason: string, lostBytes: number, resumeAt: number | null): void {
    if (this.policy === "fail") throw ComputeErrors.create("COMPUTE_ERR_BAD_FRAME", `${where}: ${reason}`, { hint: "--on-bad-record=skip skips the damaged bytes and reads on from the next readable record" });
    this.lostBytes += lostBytes;
    const after = resumeAt === null ? `${lostBytes} bytes to the end unreadable` : `${lostBytes} bytes skipped to the next readable record at byte ${resumeAt}`;
    this.record(where, `${reason} (${after})`, "COMPUTE_ERR_BAD_FRAME");
  }

  summary(): string {
    if (this.skipped === 0) return "";
    const reasons = [...this.reasons].map(([r, n]) => `${n} x ${r}`).join("; ");
    return `${this.skipped} bad records skipped${this.lostBytes ? `, ${this.lostBytes} bytes unreadable` : ""}: ${reasons}; first: ${this.firstExample}`;
  }
}
