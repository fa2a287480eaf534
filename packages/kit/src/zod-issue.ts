import type { z } from "zod";
import { valueSnippet } from "./value-kind.js";

type Issue = z.core.$ZodIssue;

/** zod's own wording; a message the schema gives a field is the field's words, used as they are. */
const ZOD_WORDING = /^(Invalid input|Invalid option|Invalid discriminator|Too small|Too big|Unrecognized key)/;

/** zod's name of a type as a user reads it. */
function typeName(expected: string): string {
  if (expected === "array") return "a list";
  if (expected === "object" || expected === "record") return "an object";
  if (expected === "int") return "a whole number";
  return `a ${expected}`;
}

/** What the user gave at a field's path (zod's issue does not carry it). */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const key of path) v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[key] : undefined;
  return v;
}

/**
 * What a schema's own message about a value ("expected deepMlp as positive
 * integers") lacks: what was given, as zod's wording says it (a list's
 * length where the message counts items). Only for a message that says what
 * was expected and quotes nothing given; a refinement over several fields
 * (a "custom" issue) names no one value.
 */
function ownMessageGot(issue: Issue, given: unknown, got: string): string {
  if (issue.code === "custom" || !issue.message.startsWith("expected") || /\bgot\b/.test(issue.message)) return "";
  const counted = (issue.code === "too_small" || issue.code === "too_big") && issue.origin === "array" && Array.isArray(given);
  return `, got ${counted ? given.length : got}`;
}

/**
 * A zod issue about a user's file (a model config, a slot config) as one
 * phrase: what was expected and what was given (`expected a number, got
 * "8"`; `expected one of "sum", "mean", "sqrtn", got "max"`; `unknown field
 * "dimm"` and, from `takes`, what the object takes there; a schema's own
 * message, with what was given added: `expected deepMlp as a list of
 * positive integers, got "32"`). Without the field's path: the caller names
 * it as its file's words do.
 */
export function zodIssueText(issue: Issue, input: unknown, takes?: (path: readonly PropertyKey[]) => string | undefined): string {
  const given = valueAt(input, issue.path);
  const got = given === undefined ? "nothing" : valueSnippet(given);
  if (!ZOD_WORDING.test(issue.message)) return issue.message + ownMessageGot(issue, given, got);
  switch (issue.code) {
    case "unrecognized_keys": {
      const also = takes?.(issue.path);
      return `unknown field ${issue.keys.map((k) => valueSnippet(k)).join(", ")}${also ? `; ${also}` : ""}`;
    }
    case "invalid_type":
      // JSON's 1e400 reads as Infinity: a number, but not one a field takes.
      if (issue.expected === "number" && typeof given === "number") return `expected a finite number, got ${got}`;
      return `expected ${typeName(issue.expected)}, got ${got}`;
    case "invalid_union":
      // A discriminated union's tag (an initializer's "kind") that names none of its options.
      if ("options" in issue && Array.isArray(issue.options)) return `expected one of ${issue.options.map((v: unknown) => valueSnippet(v)).join(", ")}, got ${got}`;
      return issue.message;
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => valueSnippet(v)).join(", ")}, got ${got}`;
    case "too_small":
    case "too_big": {
      const small = issue.code === "too_small";
      const limit = Number(small ? issue.minimum : issue.maximum);
      const sign = small ? (issue.inclusive ? ">=" : ">") : issue.inclusive ? "<=" : "<";
      if (issue.origin === "array") return `expected a list of ${small ? "at least" : "at most"} ${limit} items, got ${Array.isArray(given) ? given.length : got}`;
      if (issue.origin === "string") return `expected ${small ? "at least" : "at most"} ${limit} characters, got ${got}`;
      return `expected a number ${sign} ${limit}, got ${got}`;
    }
    default:
      return issue.message;
  }
}
