import { readFileSync } from "node:fs";
import { z } from "zod";
import { OrchestratorErrors } from "../errors.js";
import { SPARSE_OPTIMIZERS } from "../optim/sparse-optimizers.js";
import { POOLINGS } from "@pangea/model";
import { duplicateJsonKey, printable, zodIssueText } from "@pangea/kit";
import type { SlotConfig } from "./embedding-store.js";

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

const slot = z
  .object({
    dim: z.number().int().positive(),
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
 * Missing fields fall back to `base` (the flags' settings). Returns the
 * default for unnamed slots and the per-slot map.
 */
export function loadSlotConfig(path: string, base: SlotConfig): { defaults: SlotConfig; perSlot: Map<number, SlotConfig> } {
  // JSON given in place of the file's name (the help says JSON): say so rather than "no such file {...".
  if (/^\s*[{[]/.test(path)) throw OrchestratorErrors.create("ORCH_ERR_BAD_SLOT_CONFIG", "--slot-config takes the path of a JSON file, not the JSON itself; write it to a file and give its path");
  const bad = (msg: string) => OrchestratorErrors.create("ORCH_ERR_BAD_SLOT_CONFIG", `slot config ${path}: ${msg}`);
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
  // Another optimizer starts from its own defaults, but keeps the L2 strength (--sparse-l2 is job-wide).
  const merge = (b: SlotConfig, o: z.infer<typeof slot> | undefined): SlotConfig => ({
    ...b,
    ...o,
    hyper: { ...(o?.optimizer && o.optimizer !== b.optimizer ? (b.hyper.l2 !== undefined ? { l2: b.hyper.l2 } : {}) : b.hyper), ...o?.hyper },
  } as SlotConfig);
  const defaults = merge(base, parsed.data.default);
  const perSlot = new Map<number, SlotConfig>();
  const keyOf = new Map<number, string>();
  for (const [id, o] of Object.entries(parsed.data.slots)) {
    const n = Number(id);
    if (n > 32767) throw bad(`slot ${n} is outside the v2 layout's range 0..32767`);
    // "3" and "03" are one slot: the later would win silently, as a key given twice does.
    if (keyOf.has(n)) throw bad(`slots.${keyOf.get(n)} and slots.${id} both name slot ${n}; give each slot once`);
    keyOf.set(n, id);
    // Dim and pooling named for the slot itself are kept apart from the default's: a feature list's own may not contradict them (model-tables).
    const { pooling: _inherited, ...rest } = merge(defaults, o);
    perSlot.set(n, { ...rest, ...(o.dim !== undefined ? { slotDim: o.dim } : {}), ...(o.pooling ? { pooling: o.pooling } : {}) });
  }
  return { defaults, perSlot };
}
