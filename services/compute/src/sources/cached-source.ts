import type { RecordCache } from "./record-cache.js";
import type { DataSource, RecordBlock, SourceDescription, SplitName } from "./source.js";

/**
 * A file source after its one pass: the records sit in a record cache in
 * file order, the last ones forming the eval split, and are read back by
 * index. Each format's source opens (or reuses) its cache and describes it.
 */
export abstract class CachedSource implements DataSource {
  protected constructor(
    protected readonly cache: RecordCache,
    private readonly trainCount: number,
    readonly info: SourceDescription,
  ) {}

  read(split: SplitName, start: number, count: number, block: RecordBlock): void {
    this.cache.read(split === "train" ? start : this.trainCount + start, count, block);
  }
}
