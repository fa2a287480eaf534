import { CRITEO_NUM_DENSE, CRITEO_NUM_SLOTS, compileFeatureList, criteoFeatureListConfig, type FeatureList } from "@pangea/features";
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

/** The layout of a version exported with `featureList` (null: none), or null when raw values cannot be read for it. */
export function rawLayoutOf(featureList: FeatureList | null, spec: ModelShape, slotIds: readonly number[]): RawLayout | null {
  if (featureList) return { list: featureList, counts: false, source: "the feature list the version was exported with" };
  const criteo = CRITEO_LAYOUT.list;
  return spec.numDense === CRITEO_NUM_DENSE && slotIds.length === CRITEO_NUM_SLOTS && slotIds.every((s, k) => s === criteo.slotIds[k]) ? CRITEO_LAYOUT : null;
}
