import { ComputeErrors } from "../errors.js";
import type { DataSource, RecordBlock, SourceDescription, SplitName } from "./source.js";

/**
 * Training files and separate held-out files (--data and --eval-data, e.g.
 * Criteo's days 0..22 and day 23): every record of the first trains, every
 * record of the second evaluates. Both must carry the same features and
 * labels.
 */
export class HeldOutFiles implements DataSource {
  readonly info: SourceDescription;

  constructor(
    private readonly train: DataSource,
    private readonly held: DataSource,
  ) {
    const a = train.info;
    const b = held.info;
    const differ = (what: string, x: unknown, y: unknown) =>
      ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `--eval-data holds other features than --data: ${what} ${JSON.stringify(y)} against ${JSON.stringify(x)}`);
    if (a.numDense !== b.numDense) throw differ("dense features", a.numDense, b.numDense);
    if (a.slotIds.join() !== b.slotIds.join()) throw differ("slots", a.slotIds, b.slotIds);
    if (JSON.stringify(a.tasks ?? []) !== JSON.stringify(b.tasks ?? [])) throw differ("tasks", a.tasks ?? [], b.tasks ?? []);
    const skipped = [a.skippedSummary, b.skippedSummary].filter(Boolean).join("; held out: ");
    const warnings = [...(a.dataWarnings ?? []), ...(b.dataWarnings ?? []).map((w) => `held out: ${w}`)];
    this.info = {
      ...a,
      description: `${a.description}; held out: ${b.description}`,
      ...(a.storage || b.storage ? { storage: [a.storage, b.storage].filter(Boolean).join("; held out: ") } : {}),
      ...(a.storageWarning || b.storageWarning ? { storageWarning: [a.storageWarning, b.storageWarning].filter(Boolean).join("; ") } : {}),
      trainRecords: a.trainRecords,
      evalRecords: b.trainRecords,
      skippedRecords: (a.skippedRecords ?? 0) + (b.skippedRecords ?? 0),
      skippedStretches: (a.skippedStretches ?? 0) + (b.skippedStretches ?? 0),
      skippedBytes: (a.skippedBytes ?? 0) + (b.skippedBytes ?? 0),
      ...(skipped ? { skippedSummary: b.skippedSummary && !a.skippedSummary ? `held out: ${skipped}` : skipped } : {}),
      ...(warnings.length ? { dataWarnings: warnings } : {}),
    };
  }

  read(split: SplitName, start: number, count: number, block: RecordBlock): void {
    (split === "train" ? this.train : this.held).read("train", start, count, block);
  }
}
