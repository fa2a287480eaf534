import type { RecordCache } from "./record-cache.js";
import type { DataSource, RecordBlock, SourceDescription, SplitName } from "./source.js";

/** The description's fields its record cache answers, the same for every format: where the records are, the split, what the pass skipped. */
export type CacheDescribed = "storage" | "storageWarning" | "trainRecords" | "evalRecords" | "skippedRecords" | "skippedStretches" | "skippedBytes" | "skippedSummary";

/**
 * A file source after its one pass: the records sit in a record cache in
 * file order, the last evalCount of them forming the eval split, and are
 * read back by index. Each format's source opens (or reuses) its cache and
 * describes the data; the cache's part of the description is added here.
 */
export abstract class CachedSource implements DataSource {
  readonly info: SourceDescription;
  private readonly trainCount: number;

  protected constructor(
    protected readonly cache: RecordCache,
    evalCount: number,
    described: Omit<SourceDescription, CacheDescribed>,
  ) {
    const { records, skippedRecords, skippedStretches, skippedBytes, skippedSummary } = cache.index;
    this.trainCount = records - evalCount;
    this.info = {
      ...described,
      storage: cache.note,
      ...(cache.warning ? { storageWarning: cache.warning } : {}),
      trainRecords: this.trainCount,
      evalRecords: evalCount,
      skippedRecords,
      skippedStretches,
      skippedBytes,
      skippedSummary,
    };
  }

  read(split: SplitName, start: number, count: number, block: RecordBlock): void {
    this.cache.read(split === "train" ? start : this.trainCount + start, count, block);
  }
}
