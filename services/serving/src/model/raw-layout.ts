import { CRITEO_NUM_DENSE, CRITEO_NUM_SLOTS, compileFeatureList, criteoFeatureListConfig, criteoLayoutMismatch, type FeatureList } from "@pangea/features";
import type { ModelShape } from "@pangea/model";

/**
 * How a version turns raw values into its inputs: the feature list it was
 * exported with, or, without one, Criteo's layout as compute reads
 * `--format criteo` (C1..C26 hashed into slots 1..26, I1..I13 as log(1 + count)).
 */
export interface RawLayout {
  readonly list: FeatureList;
  /**
   * How dense values read: Criteo's integer counts ("" and null missing), as compute's TSV reader reads them and
   * refuses anything else; numbers; or either (a feature list of Criteo's layout, which trains on TSV, counts, or on
   * Parquet, whose columns may hold any number).
   */
  readonly dense: "counts" | "numbers" | "counts or numbers";
  /** What the layout is, for error messages. */
  readonly source: string;
}

const CRITEO_LAYOUT: RawLayout = {
  list: compileFeatureList(criteoFeatureListConfig(), "Criteo's layout"),
  dense: "counts",
  source: "Criteo's layout (I1..I13, C1..C26)",
};

/**
 * The layout of a version exported with `featureList` (null: none), or null
 * when raw values cannot be read for it. A list of Criteo's layout (what
 * `pangea gen-data --feature-list-out` writes, its slots' dims and pooling
 * aside) reads I1..I13 as Criteo's counts or as numbers: a trial's version
 * exported with such a list refused `"I2": ""`, the README's own example,
 * which a version exported without one reads as a missing count; but such
 * a list also reads Parquet files, whose dense columns may hold fractions.
 */
export function rawLayoutOf(featureList: FeatureList | null, spec: ModelShape, slotIds: readonly number[]): RawLayout | null {
  if (featureList) {
    const criteo = criteoLayoutMismatch(featureList.config) === null;
    return { list: featureList, dense: criteo ? "counts or numbers" : "numbers", source: `the feature list the version was exported with${criteo ? " (Criteo's layout)" : ""}` };
  }
  const criteo = CRITEO_LAYOUT.list;
  return spec.numDense === CRITEO_NUM_DENSE && slotIds.length === CRITEO_NUM_SLOTS && slotIds.every((s, k) => s === criteo.slotIds[k]) ? CRITEO_LAYOUT : null;
}
