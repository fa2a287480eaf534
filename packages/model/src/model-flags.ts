import { readFileSync, statSync } from "node:fs";
import { UsageError, duplicateJsonKey, printable } from "@pangea/kit";
import { V2_MAX_SLOT } from "@pangea/features";
import { ModelErrors } from "./errors.js";
import { architectureConfig, validateSpec, type ArchitectureConfig } from "./spec.js";
import { ARCHITECTURE_NAMES } from "./architectures/registry.js";

/**
 * The input hyper-parameters are checked on at start, before the data's is known: as wide as any data's, in
 * dense features and in slots, so a bound on the input's width (dcn-v2's lowRank) or slot count is refused at
 * start only if no data could meet it, and otherwise at job start, quoting the data's (the parameter budget waits
 * for the real shape too).
 */
export const standInShape = (embeddingDim: number) => ({ numDense: 1 << 20, numSlots: STAND_IN_SLOTS, embeddingDim });

/** As many slots as the feature-id layout can name. */
const STAND_IN_SLOTS = V2_MAX_SLOT + 1;

/** The largest --model-config file read. */
export const MAX_MODEL_CONFIG_BYTES = 1 << 20;

export interface ModelFlags {
  model: string;
  modelConfig?: string;
  embeddingDim: number;
  /** dlrm's widths; absent: the architecture's defaults, the bottom MLP ending in --embedding-dim. */
  bottomMlp?: readonly number[];
  topMlp?: readonly number[];
}

/**
 * The job's architecture from --model, --model-config (a JSON object of its
 * hyper-parameters; fields it leaves out take the architecture's defaults)
 * and, for dlrm, --bottom-mlp/--top-mlp (the file's values win). The
 * hyper-parameters are checked now, so a bad one stops the process at start.
 */
export function architectureFromFlags(f: ModelFlags): ArchitectureConfig {
  let fromFile: Record<string, unknown> = {};
  if (f.modelConfig) {
    let text: string;
    try {
      // A hyper-parameter file is a few lines: a device, a pipe or a huge file is a mistake, not something to read whole.
      const st = statSync(f.modelConfig);
      if (!st.isFile()) throw new UsageError(`--model-config: ${f.modelConfig} is not a regular file`);
      if (st.size > MAX_MODEL_CONFIG_BYTES) throw new UsageError(`--model-config: ${f.modelConfig} holds ${st.size} bytes; a model config is at most ${MAX_MODEL_CONFIG_BYTES}`);
      text = readFileSync(f.modelConfig, "utf8");
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`--model-config: cannot read ${f.modelConfig} (${(err as NodeJS.ErrnoException).code})`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`--model-config: ${f.modelConfig} is not JSON: ${printable((err as Error).message, 160)}`);
    }
    const twice = duplicateJsonKey(text);
    if (twice !== null) throw new UsageError(`--model-config: ${f.modelConfig} gives ${JSON.stringify(twice)} twice; give each field once`);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new UsageError(`--model-config: ${f.modelConfig} must hold a JSON object of ${f.model}'s hyper-parameters`);
    fromFile = parsed as Record<string, unknown>;
    if ("name" in fromFile && typeof fromFile.name !== "string") throw new UsageError(`--model-config: ${f.modelConfig} field name: expected the model's name as a string ("${f.model}"), got ${printable(JSON.stringify(fromFile.name), 60)}`);
    if ("name" in fromFile && fromFile.name !== f.model) {
      const known = ARCHITECTURE_NAMES.includes(fromFile.name as string) ? "" : ` (not a model: expected one of ${ARCHITECTURE_NAMES.join(", ")})`;
      throw new UsageError(`--model-config: ${f.modelConfig} is for model ${printable(JSON.stringify(fromFile.name), 60)}${known}, but --model is ${f.model}`);
    }
    delete fromFile.name;
  }
  if (f.model !== "dlrm" && (f.bottomMlp !== undefined || f.topMlp !== undefined)) {
    throw new UsageError(`--bottom-mlp and --top-mlp are dlrm's; ${layerWidthsHint(f.model)}`);
  }
  const hyper = f.model === "dlrm" ? { bottomMlp: [...(f.bottomMlp ?? dlrmBottomFor(f.embeddingDim))], ...(f.topMlp ? { topMlp: [...f.topMlp] } : {}), ...fromFile } : fromFile;
  try {
    const architecture = architectureConfig(f.model, hyper);
    // What the hyper-parameters alone can get wrong, checked on a stand-in input shape: the data's comes at job start.
    validateSpec({ ...standInShape(f.embeddingDim), architecture }, undefined, { inputKnown: false });
    return architecture;
  } catch (err) {
    if (ModelErrors.is(err)) {
      const message = (err as Error).message;
      throw ModelErrors.create("MODEL_ERR_BAD_SPEC", `${message}${specProblemSource(message, f, fromFile)}`);
    }
    throw err;
  }
}

/**
 * Where a refused model's problem comes from, for its message: dlrm's widths given by flag named as the flag the user
 * typed (not the field they became), else the --model-config file; a forward pass that does not fit its own params is
 * the definition's fault, whatever config it ran with, so it names the definition.
 */
export function specProblemSource(message: string, f: Pick<ModelFlags, "model" | "modelConfig" | "bottomMlp" | "topMlp">, fromFile: Record<string, unknown>): string {
  if (message.startsWith(`model ${f.model}'s forward pass: `) || message.startsWith(`model ${f.model}'s forward pass failed on a shape check: `)) {
    return ` (in ${f.model}'s definition, packages/model/src/architectures/; run with ${f.modelConfig ? `the hyper-parameters of ${f.modelConfig}` : "its default hyper-parameters"})`;
  }
  const flags = f.model === "dlrm" ? DLRM_WIDTH_FLAGS.filter(([field, , given]) => given(f as ModelFlags) !== undefined && !(field in fromFile) && message.includes(field)).map(([, flag]) => flag) : [];
  return flags.length ? ` (given by ${flags.join(" and ")})` : f.modelConfig ? ` (from ${f.modelConfig})` : "";
}

/** Where another architecture's layer widths go, with its own defaults as the example (an architecture may have none). */
/** dlrm's fields that flags give: the field, its flag, and the flag's value. */
const DLRM_WIDTH_FLAGS: readonly (readonly [string, string, (f: ModelFlags) => unknown])[] = [
  ["bottomMlp", "--bottom-mlp", (f) => f.bottomMlp],
  ["topMlp", "--top-mlp", (f) => f.topMlp],
];

function layerWidthsHint(model: string): string {
  const { name: _, ...defaults } = architectureConfig(model, {});
  const widths = Object.entries(defaults).filter(([, v]) => Array.isArray(v));
  if (!widths.length) return `${model} has no layer widths (its hyper-parameters, in --model-config: ${Object.keys(defaults).join(", ") || "none"})`;
  return `give ${model}'s layer widths in --model-config (its defaults: ${JSON.stringify(Object.fromEntries(widths))})`;
}

/** dlrm's default bottom MLP with its last layer at the embedding dim, which its dot products need ([64, 16] at the default 16). */
export function dlrmBottomFor(embeddingDim: number): number[] {
  const widths = architectureConfig("dlrm", {}).bottomMlp as number[];
  return [...widths.slice(0, -1), embeddingDim];
}
