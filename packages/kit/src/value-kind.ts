import { printable } from "./printable.js";

/** What a decoded value is, for a message: "null", "a list", "an object", "a number", "a string". */
export function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/**
 * A decoded value for a one-line message: a string (cut to `max` chars, its
 * controls escaped, quoted) or a number, boolean or null as it reads; a list
 * or an object by its kind only, never its contents: a hostile one can be
 * nested thousands deep (JSON.stringify then overflows the stack) or
 * megabytes long.
 */
export function valueSnippet(v: unknown, max = 64): string {
  if (typeof v === "string") return JSON.stringify(printable(v, max));
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean" || v === null) return String(v);
  return kindOf(v);
}
