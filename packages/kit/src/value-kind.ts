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
  if (typeof v === "string") {
    // JSON's escapes first (quotes, backslashes, C0 controls), then printable's for what JSON leaves
    // (C1, DEL, bidi overrides, line separators): each character escaped once ("1\n2", not "1\\n2").
    const shown = v.length > max ? v.slice(0, max) : v;
    const quoted = printable(JSON.stringify(shown), Number.POSITIVE_INFINITY);
    return v.length > max ? `${quoted.slice(0, -1)}… (${v.length - max} more chars)"` : quoted;
  }
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean" || v === null) return String(v);
  return kindOf(v);
}

/** Why a decoded JSON value is not a number (dense_features' values), or null when it is one. */
export function notANumberProblem(v: unknown): string | null {
  if (typeof v === "number") return null;
  return `must be a number, got ${typeof v === "string" ? `the string ${valueSnippet(v, 40)}` : valueSnippet(v)}`;
}

/**
 * Names a client sent (input names, keys) for a one-line message: the
 * first `maxNames`, each quoted as valueSnippet() quotes a string (so a
 * name holding a newline and one holding a backslash and an n differ, and a
 * comma inside a name is not read as a separator), cut to `maxChars`, then
 * how many more there were. A hostile client's names can be megabytes each,
 * hold newlines, or number in the hundreds of thousands.
 */
export function printableNames(names: readonly string[], maxNames = 5, maxChars = 40): string {
  const shown = names.slice(0, maxNames).map((n) => valueSnippet(n, maxChars)).join(", ");
  return names.length > maxNames ? `${shown} and ${names.length - maxNames} more` : shown;
}
