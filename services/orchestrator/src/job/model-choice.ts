import { architectureConfig, dimsOf, dlrmBottomFor, poolingOf, type ArchitectureConfig, type ModelFlags, type ModelSpec, type Pooling } from "@pangea/model";

/**
 * Why a checkpoint's model cannot be this job's (--model, its
 * hyper-parameters, --embedding-dim; `flags` say which of them the job
 * gave), or null: known at start, so a job
 * restored into another architecture stops before anything starts. The
 * data's shape is compared when compute registers.
 */
export function checkpointModelMismatch(saved: ModelSpec, architecture: ArchitectureConfig, flags: Pick<ModelFlags, "embeddingDim" | "modelConfig" | "bottomMlp" | "topMlp">): string | null {
  const { embeddingDim } = flags;
  const was = saved.architecture;
  if (was.name !== architecture.name) return `holds model ${was.name}, but --model is ${architecture.name}: it was trained with ${modelFlagsOf(saved, embeddingDim)}`;
  if (saved.embeddingDim !== embeddingDim) return `has embedding dim ${saved.embeddingDim}, but --embedding-dim is ${embeddingDim}`;
  // Every hyper-parameter that differs, so one restart mends them all. Dropout is a training setting, not a parameter:
  // a checkpoint restores under any rate.
  const differ = [...new Set([...Object.keys(was), ...Object.keys(architecture)])].filter((key) => key !== "dropout" && JSON.stringify(was[key]) !== JSON.stringify(architecture[key]));
  if (differ.length === 0) return null;
  const by = [...new Set(differ.map((key) => givenBy(was.name, key, flags)))].join("; ");
  if (differ.length === 1) {
    const key = differ[0]!;
    return `has ${was.name} ${key} ${JSON.stringify(was[key])}, but this job's (${by}) is ${JSON.stringify(architecture[key])}: it was trained with ${modelFlagsOf(saved, embeddingDim)}`;
  }
  const list = (config: ArchitectureConfig) => differ.map((key) => `${key} ${JSON.stringify(config[key])}`).join(", ");
  return `has ${was.name} ${list(was)}, but this job's (${by}) are ${list(architecture)}: it was trained with ${modelFlagsOf(saved, embeddingDim)}`;
}

/**
 * The flags of this job that may have given a hyper-parameter (dlrm's widths have their own beside
 * --model-config); none given: its default, said as such, since the flag to give is then the one missing.
 */
function givenBy(model: string, key: string, flags: Pick<ModelFlags, "modelConfig" | "bottomMlp" | "topMlp">): string {
  const width = model === "dlrm" && key === "bottomMlp" ? (["--bottom-mlp", flags.bottomMlp] as const) : model === "dlrm" && key === "topMlp" ? (["--top-mlp", flags.topMlp] as const) : null;
  const gave = [...(width && width[1] !== undefined ? [width[0]] : []), ...(flags.modelConfig ? ["--model-config"] : [])];
  return gave.length ? gave.join(" or ") : `the default, no ${[...(width ? [width[0]] : []), "--model-config"].join(" or ")}`;
}

/**
 * The flags that give a checkpoint's model: --model, --embedding-dim where the job's differs, and a --model-config
 * of the hyper-parameters not at their defaults.
 */
function modelFlagsOf(saved: ModelSpec, embeddingDim: number): string {
  const was = saved.architecture;
  const defaults: Record<string, unknown> = architectureConfig(was.name, {});
  if (was.name === "dlrm") defaults.bottomMlp = dlrmBottomFor(saved.embeddingDim);
  // Dropout is a training setting, not compared (above).
  const differ = Object.entries(was).filter(([k, v]) => k !== "name" && k !== "dropout" && JSON.stringify(v) !== JSON.stringify(defaults[k]));
  const dim = saved.embeddingDim !== embeddingDim ? ` --embedding-dim ${saved.embeddingDim}` : "";
  return `--model ${was.name}${dim}${differ.length ? ` and a --model-config of ${JSON.stringify(Object.fromEntries(differ))}` : " at its default hyper-parameters"}`;
}

/** What --slot-config names for one slot itself (not its default's). */
export interface NamedSlotSettings {
  slotDim?: number;
  pooling?: Pooling;
}

/**
 * Why a checkpoint's slots cannot be this job's, or null: a slot whose
 * embedding dim or pooling --slot-config names for it (which wins over
 * anything the data's feature list says, so it is known at start) other than
 * the checkpoint's. A checkpoint of an older version, without its slot ids,
 * is compared when compute registers.
 */
export function checkpointSlotMismatch(saved: ModelSpec, slotIds: readonly number[] | undefined, perSlot: ReadonlyMap<number, NamedSlotSettings>): string | null {
  if (!slotIds || slotIds.length !== saved.numSlots) return null;
  const dims = dimsOf(saved);
  const pooling = poolingOf(saved);
  for (const [i, slot] of slotIds.entries()) {
    const named = perSlot.get(slot);
    if (named?.slotDim !== undefined && named.slotDim !== dims[i]) return `has slot ${slot} at embedding dim ${dims[i]}, but --slot-config gives it ${named.slotDim}`;
    if (named?.pooling !== undefined && named.pooling !== pooling[i]) return `pools slot ${slot} with ${pooling[i]}, but --slot-config gives it ${named.pooling}`;
  }
  return null;
}

/**
 * Why a checkpoint's optimizer state cannot be this job's, or null: its dense optimizer is not --dense-optimizer,
 * or a slot's rows carry another sparse optimizer's state than the one --sparse-optimizer or --slot-config gives the
 * slot (the state does not carry over: a job continues with the optimizers it was trained with).
 */
export function checkpointOptimizerMismatch(
  saved: { denseOptimizer?: string; tables: readonly { slot: number; optimizer: string }[] }[],
  denseOptimizer: string,
  sparseOptimizerOf: (slot: number) => string,
): string | null {
  const dense = saved[0]?.denseOptimizer ?? "adam";
  const denseProblem = dense !== denseOptimizer ? `was trained with --dense-optimizer ${dense}, but this job gives ${denseOptimizer}: give the optimizer it was trained with` : null;
  // The first slot of another sparse optimizer too: both are mended in one go.
  const other = saved.flatMap((m) => m.tables).find((t) => t.optimizer !== sparseOptimizerOf(t.slot));
  const sparseProblem = other ? `holds slot ${other.slot}'s rows with ${other.optimizer}'s state, but this job gives the slot ${sparseOptimizerOf(other.slot)} (--sparse-optimizer or --slot-config): give the optimizer it was trained with` : null;
  return [denseProblem, sparseProblem].filter((p) => p !== null).join("; and it ") || null;
}
