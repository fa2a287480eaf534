import { CRITEO_NUM_DENSE, CRITEO_NUM_SLOTS, compileFeatureList, criteoFeatureListConfig, criteoLayoutMismatch, type FeatureList } from "@pangea/features";
import type { ModelShape } from "@pangea/model";

/**
 * How a version turns raw values into its inputs: the feature list it was
 * exported with, or, without one, Criteo's layout as compute reads
 * `--format criteo` (C1..C26 hashed into slots 1..26, I1..I13 as log(1 + count)).
 */
export interface RawLayout {
  readonly list: FeatureList;
  /** Criteo's dense fields are integer counts: compute refuses a row holding anything else, and so does serving. */
  readonly counts: boolean;
  /** What the layout is, for error messages. */
  readonly source: string;
}

const CRITEO_LAYOUT: RawLayout = {
  list: compileFeatureList(criteoFeatureListConfig(), "Criteo's layout"),
  counts: true,
  source: "Criteo's layout (I1..I13, C1..C26)",
};

/**
 * The layout of a version exported with `featureList` (null: none), or null
 * when raw values cannot be read for it. A list of Criteo's layout (what
 * `pangea gen-data --feature-list-out` writes, its slots' dims and pooling
 * aside) reads I1..I13 as Criteo's counts, as a version exported without
 * one does: the same values are accepted and refused whichever way the
 * model was exported (a trial's version exported with such a list refused
 * `"I2": ""`, the README's own example, and took 2.5, which compute's TSV
 * reader refuses).
 */
export function rawLayoutOf(featureList: FeatureList | null, spec: ModelShape, slotIds: readonly number[]): RawLayout | null {
  if (featureList) {
    const criteo = criteoLayoutMismatch(featureList.config) === null;
    return { list: featureList, counts: criteo, source: `the feature list the version was exported with${criteo ? " (Criteo's layout: I1..I13 are counts)" : ""}` };
  }
  const criteo = CRITEO_LAYOUT.list;
  return spec.numDense === CRITEO_NUM_DENSE && slotIds.length === CRITEO_NUM_SLOTS && slotIds.every((s, k) => s === criteo.slotIds[k]) ? CRITEO_LAYOUT : null;
}
