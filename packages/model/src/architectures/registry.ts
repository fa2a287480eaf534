import type { Architecture } from "./architecture.js";
import { dlrm } from "./dlrm/dlrm.js";
import { dcnV2 } from "./dcn-v2/dcn-v2.js";
import { deepfm } from "./deepfm/deepfm.js";
import { wideDeep } from "./wide-deep/wide-deep.js";
import { mmoe } from "./mmoe/mmoe.js";
import { sharedBottom } from "./shared-bottom/shared-bottom.js";

/** Every architecture --model can name. A new one is a folder beside these, its import and its entry in the list. */
export const ARCHITECTURES: ReadonlyMap<string, Architecture<any>> = new Map<string, Architecture<any>>(
  [dlrm, dcnV2, deepfm, wideDeep, mmoe, sharedBottom].map((a) => [a.name, a]),
);

export const ARCHITECTURE_NAMES: readonly string[] = [...ARCHITECTURES.keys()];
