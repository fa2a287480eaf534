import { readFileSync } from "node:fs";
import { z } from "zod";
import { defineErrors, duplicateJsonKey, printable, zodIssueText } from "@pangea/kit";
import { MAX_EMBEDDING_DIM, POOLINGS, validateSpec, type ArchitectureConfig } from "@pangea/model";
import { SPARSE_OPTIMIZERS } from "./orchestrator.js";

/**
 * The orchestrator's error for a --slot-config it cannot take (its registry
 * spreads this in). Declared where the file is read, so `pangea run`, which
 * reads it before starting anything, refuses it with the orchestrator's code.
 */
export const SLOT_CONFIG_ERRORS = {
  ORCH_ERR_BAD_SLOT_CONFIG: { status: "INVALID_ARGUMENT", exit: 2, description: "the per-slot embedding configuration is invalid" },
} as const;
export const SlotConfigErrors = defineErrors(SLOT_CONFIG_ERRORS);

const initializer = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("zeros") }),
  z.object({ kind: z.literal("ones") }),
  z.object({ kind: z.literal("constant"), value: z.number() }),
  z.object({ kind: z.literal("uniform"), range: z.number().positive().default(0.05) }),
]);

const hyper = z
  .object({
    learningRate: z.number().positive(),
    initialAccumulator: z.number().min(0),
    weightDecay: z.number().min(0),
    beta: z.number().min(0),
    l1: z.number().min(0),
    l2: z.number({ message: "expected an L2 strength (a number >= 0)" }).min(0, "expected an L2 strength >= 0"),
    beta1: z.number().min(0).max(1),
    beta2: z.number().min(0).max(1),
    epsilon: z.number().positive(),
    momentum: z.number().min(0).max(1),
    nesterov: z.boolean(),
    rho: z.number().min(0).max(1),
  })
  .partial()
  .strict();

// The model's bound, checked here too: the model's own check would name the slot but not the file or the field.
const embeddingDim = `expected an embedding dim 1..${MAX_EMBEDDING_DIM}`;

const slot = z
  .object({
    dim: z.number().int().min(1, embeddingDim).max(MAX_EMBEDDING_DIM, embeddingDim),
    initializer,
    optimizer: z.enum(SPARSE_OPTIMIZERS),
    hyper,
    occurrenceThreshold: z.number().int().min(0).max(65535),
    expireSeconds: z.number().int().min(0),
    pooling: z.enum(POOLINGS),
  })
  .partial()
  .strict();

const file = z
  .object({
    default: slot.optional(),
    slots: z.record(z.string().regex(/^\d+$/, "slot ids are integers"), slot).default({}),
  })
  .strict();

/** One slot's settings as the file gives them (or its default's); what it leaves out comes from the flags. */
export type SlotSettings = z.infer<typeof slot>;

/** A --slot-config file, checked: its default settings and each slot's, by slot id in the file's order. */
export interface SlotConfigFile {
  default?: SlotSettings;
  slots: ReadonlyMap<number, SlotSettings>;
}

/** What the object at a path of the file takes, for a message naming an unknown field there. */
function fieldsTakenAt(path: readonly PropertyKey[]): string | undefined {
  const last = path.at(-1);
  const keys = (o: z.ZodObject) => Object.keys(o.shape).join(", ");
  if (path.length === 0) return `the file takes ${keys(file)}`;
  if (last === "hyper") return `hyper takes ${keys(hyper)}`;
  if (path[0] === "default" || path[0] === "slots") return `a slot takes ${keys(slot)}`;
  return undefined;
}

/**
 * Reads --slot-config: JSON with optional "default" settings and per-slot
 * overrides, e.g.
 *   {"default": {"optimizer": "adagrad", "expireSeconds": 86400},
 *    "slots": {"3": {"occurrenceThreshold": 5, "optimizer": "ftrl", "hyper": {"learningRate": 0.05}}}}
 * Every mistake is one line naming the file and the field (ORCH_ERR_BAD_SLOT_CONFIG).
 */
export function readSlotConfig(path: string): SlotConfigFile {
  // JSON given in place of the file's name (the help says JSON): say so rather than "no such file {...".
  if (/^\s*[{[]/.test(path)) throw SlotConfigErrors.create("ORCH_ERR_BAD_SLOT_CONFIG", "--slot-config takes the path of a JSON file, not the JSON itself; write it to a file and give its path");
  const bad = (msg: string) => SlotConfigErrors.create("ORCH_ERR_BAD_SLOT_CONFIG", `slot config ${path}: ${msg}`);
  let raw: unknown;
  let text = "";
  try {
    text = readFileSync(path, "utf8");
    raw = JSON.parse(text);
  } catch (err) {
    throw bad((err as NodeJS.ErrnoException).code ? `cannot read: ${(err as NodeJS.ErrnoException).code}` : `not valid JSON: ${printable((err as Error).message, 160)}`);
  }
  const twice = duplicateJsonKey(text);
  if (twice !== null) throw bad(`gives ${JSON.stringify(twice)} twice; give each field once`);
  // Checked before the schema: zod reports a bad record key only as "Invalid key in record".
  const named = (raw as { slots?: unknown } | null)?.slots;
  if (named && typeof named === "object" && !Array.isArray(named)) {
    const key = Object.keys(named).find((k) => !/^\d+$/.test(k));
    if (key !== undefined) throw bad(`slots.${key}: a slot is named by its number (as in the data and the feature list), e.g. "7"; got ${JSON.stringify(key)}`);
  }
  const parsed = file.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw bad(`${issue.path.join(".") || "(root)"}: ${zodIssueText(issue, raw, fieldsTakenAt)}`);
  }
  const slots = new Map<number, SlotSettings>();
  const keyOf = new Map<number, string>();
  for (const [id, o] of Object.entries(parsed.data.slots)) {
    const n = Number(id);
    if (n > 32767) throw bad(`slot ${n} is outside the v2 layout's range 0..32767`);
    // "3" and "03" are one slot: the later would win silently, as a key given twice does.
    if (keyOf.has(n)) throw bad(`slots.${keyOf.get(n)} and slots.${id} both name slot ${n}; give each slot once`);
    keyOf.set(n, id);
    slots.set(n, o);
  }
  return { ...(parsed.data.default ? { default: parsed.data.default } : {}), slots };
}

/**
 * Refuses (MODEL_ERR_BAD_SPEC) per-slot dims the architecture cannot take, before the data is known: the slots
 * --slot-config names, and those it leaves to its default (or to --embedding-dim), on a stand-in input as wide as
 * any data's. The orchestrator checks this at start, and `pangea run` before starting it.
 */
export function checkSlotDims(config: SlotConfigFile | null, embeddingDim: number, architecture: ArchitectureConfig): void {
  const named = [...(config?.slots.keys() ?? [])];
  const otherDim = config?.default?.dim ?? embeddingDim;
  const dims = [...named.map((s) => config!.slots.get(s)!.dim ?? otherDim), otherDim];
  const names = [...named, named.length ? "every other slot" : "every slot"];
  validateSpec({ numDense: 1 << 20, numSlots: dims.length, embeddingDim, slotDims: dims, architecture }, names, { inputKnown: false });
}
