import type { z } from "zod";
import type { FlagTable } from "./config.js";

/** What --help, the environment and the README say of one config field. */
export interface FlagDoc {
  /** Environment variable read when the flag is absent. */
  env?: string;
  description: string;
  /** The default as --help shows it, where the schema's own default is computed (a pid, a timestamp) or absent. */
  shown?: string;
}

const docs = new WeakMap<z.ZodType, FlagDoc>();

/**
 * Declares a config field and its flag in one place: the zod schema (type,
 * checks, default) carries the flag's environment variable and description,
 * and flagTable derives --help and the parser's flag list from it.
 */
export function flag<T extends z.ZodType>(schema: T, doc: FlagDoc): T {
  docs.set(schema, doc);
  return schema;
}

interface Def {
  type?: string;
  innerType?: z.ZodType;
}

function isBoolean(schema: z.ZodType): boolean {
  let s: z.ZodType | undefined = schema;
  while (s) {
    const def: Def = (s as unknown as { _zod: { def: Def } })._zod.def;
    if (def.type === "boolean") return true;
    s = def.innerType;
  }
  return false;
}

/** The default as --help prints it: the value the field takes when the flag is absent. */
function shownDefault(schema: z.ZodType): string | undefined {
  const r = schema.safeParse(undefined);
  if (!r.success || r.data === undefined || r.data === false) return undefined;
  return Array.isArray(r.data) ? r.data.join(",") : String(r.data);
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The flags of a config schema's fields, in their order; every field must have been declared with flag(). */
export function flagTable(shape: Record<string, z.ZodType>): FlagTable {
  const out: FlagTable = {};
  for (const [key, schema] of Object.entries(shape)) {
    const doc = docs.get(schema);
    if (!doc) throw new Error(`config field ${key} is not declared with flag(): give it an environment variable and a description`);
    const dflt = doc.shown ?? shownDefault(schema);
    out[kebab(key)] = {
      ...(doc.env ? { env: doc.env } : {}),
      description: doc.description,
      ...(dflt !== undefined ? { default: dflt } : {}),
      ...(isBoolean(schema) ? { boolean: true } : {}),
    };
  }
  return out;
}
