import { parseArgs } from "node:util";
import type { z } from "zod";
import { PangeaError } from "./errors.js";
import { printable } from "./printable.js";

export interface FlagSpec {
  /** Environment variable read when the flag is absent. */
  env?: string;
  description: string;
  /** Shown in --help; the zod schema holds the real default. */
  default?: string;
  boolean?: boolean;
}

export type FlagTable = Record<string, FlagSpec>;

export class UsageError extends PangeaError {
  constructor(message: string) {
    super("CONFIG_ERR_INVALID", { status: "INVALID_ARGUMENT", exit: 2, description: "invalid flag or environment value" }, message);
  }
}

export function usageText(program: string, summary: string, flags: FlagTable): string {
  const rows = Object.entries(flags).map(([name, spec]) => {
    const left = `  --${name}${spec.boolean ? "" : " <value>"}`;
    const extra = [spec.default !== undefined ? `default ${spec.default}` : "", spec.env ? `env ${spec.env}` : ""].filter(Boolean).join("; ");
    return `${left.padEnd(30)} ${spec.description}${extra ? ` (${extra})` : ""}`;
  });
  rows.push(`${"  --help".padEnd(30)} show this help`);
  return `Usage: ${program} [flags]\n\n${summary}\n\nFlags:\n${rows.join("\n")}\n`;
}

const NEGATIVE_NUMBER = /^-(\d|\.\d)/;

/**
 * The command line as node's parseArgs reads it, with `--flag -1` taken as
 * `--flag=-1` for a flag that takes a value: parseArgs calls a value that
 * starts with '-' ambiguous, where a user meant a (negative) number, which
 * the flag's own check then names as out of range.
 */
export function withNegativeValues(argv: readonly string[], takesValue: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (a.startsWith("--") && !a.includes("=") && takesValue(a.slice(2)) && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** A boolean flag's environment variable: set and on ("1" or "true"), as parseConfig reads it. */
export function envFlagOn(value: string | undefined): boolean {
  return value === "1" || value === "true";
}

/** An environment variable that parseConfig takes as given (set and not empty). */
export function envGiven(value: string | undefined): boolean {
  return value !== undefined && value !== "";
}

/**
 * Parses flags (then environment) into a frozen, validated config. Every
 * problem becomes one UsageError line naming the flag and what was expected.
 * Returns null when --help was asked for.
 */
export function parseConfig<S extends z.ZodType>(
  schema: S,
  flags: FlagTable,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Readonly<z.infer<S>> | null {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [name, spec] of Object.entries(flags)) options[name] = { type: spec.boolean ? "boolean" : "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: withNegativeValues(argv, (n) => options[n]?.type === "string"), options, strict: true, allowPositionals: false }));
  } catch (err) {
    // Whole: an option typed with a newline in it is part of the message (printed escaped, on one line). Node's own
    // line breaks between its sentences become spaces (they came out as a literal \n).
    throw new UsageError((err as Error).message.replace(/([.?])\n/g, "$1 "));
  }
  if (values.help) return null;
  const raw: Record<string, unknown> = {};
  const sourceOf: Record<string, string> = {};
  // Of this parse: a process's flags are parsed once, and a later parse (another command's) speaks for itself.
  givenByEnv.clear();
  for (const [name, spec] of Object.entries(flags)) {
    const key = camel(name);
    if (values[name] !== undefined) {
      raw[key] = values[name];
      sourceOf[key] = `--${name}`;
    } else if (spec.env && envGiven(env[spec.env])) {
      raw[key] = spec.boolean ? envFlagOn(env[spec.env]) : env[spec.env];
      sourceOf[key] = `${spec.env} (environment)`;
      givenByEnv.set(`--${name}`, sourceOf[key]);
    }
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? "");
    const flagName = sourceOf[key] ?? (key ? `--${kebab(key)}` : "config");
    // What was given, where the message says what was expected and does not quote it already: "expected ... up to 1024" alone does not show a typo.
    const given = raw[key];
    const got = typeof given === "string" && issue.message.startsWith("expected") && !/\bgot\b/.test(issue.message) && !(given && quotes(issue.message, given)) ? `, got "${printable(given, 80)}"` : "";
    throw new UsageError(`invalid ${flagName}: ${issue.message}${got}`);
  }
  return deepFreeze(result.data);
}

/** The flags this process took from the environment, and how they were given ("PANGEA_X (environment)"). */
const givenByEnv = new Map<string, string>();

/**
 * A usage error found after parsing (a file a flag names that does not
 * read) starts with the flag's name; one the environment gave is named as
 * the variable the user set, as parseConfig's own errors are.
 */
export function namedAsGiven(message: string): string {
  const m = /^(invalid )?(--[a-z0-9-]+)\b/.exec(message);
  const env = m ? givenByEnv.get(m[2]!) : undefined;
  return env ? `${m![1] ?? ""}${env}${message.slice(m![0].length)}` : message;
}

/** Whether a message already shows the value, as a word of its own ("x" is not in "expected", nor "0" in "1024"). */
function quotes(message: string, value: string): boolean {
  const escaped = value.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\w.-])${escaped}($|[^\\w.-])`).test(message);
}

function camel(s: string): string {
  return s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}
