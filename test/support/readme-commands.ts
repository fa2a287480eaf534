/**
 * The commands a Markdown file shows: the lines of its fenced code blocks and
 * its inline code spans, split into words as a shell would (quotes, `#`
 * comments, `\` continuations, `VAR=value` prefixes), so a test can hold each
 * against the program that runs it.
 */

export interface ShownCommand {
  /** 1-based line of the README where the command starts. */
  line: number;
  /** The command as written, for messages. */
  text: string;
  /** Its words after any VAR=value prefixes, the program first. */
  words: string[];
  /** From a fenced block (a whole command line) or an inline code span (often a synopsis with placeholders). */
  where: "block" | "inline";
}

/** Words of one command line: quotes group, an unquoted `#` starts a comment. */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: string | null = null;
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = null;
      else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      word ??= "";
    } else if (/\s/.test(ch)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (ch === "#" && word === null) {
      break;
    } else {
      word = (word ?? "") + ch;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

const ENV_ASSIGNMENT = /^[A-Z_][A-Z0-9_]*=/;

function command(line: number, text: string, where: ShownCommand["where"]): ShownCommand | null {
  const all = shellWords(text.replace(/^\$\s+/, ""));
  const first = all.findIndex((w) => !ENV_ASSIGNMENT.test(w));
  return first < 0 ? null : { line, text, words: all.slice(first), where };
}

/**
 * Every command line of the fenced code blocks, then every inline code span
 * (which may wrap onto the next line of its paragraph).
 */
export function shownCommands(markdown: string): ShownCommand[] {
  const out: ShownCommand[] = [];
  const lines = markdown.split("\n");
  /** The text outside fenced blocks, with blank lines where blocks were so offsets keep their line numbers. */
  const prose: string[] = [];
  let fence: string | null = null;
  let pending: { line: number; text: string } | null = null;
  lines.forEach((raw, i) => {
    const opening = /^\s*(`{3,}|~{3,})(.*)$/.exec(raw);
    prose.push(fence === null && !opening ? raw : "");
    if (fence === null && opening) {
      // JSON and other data blocks hold no commands.
      const lang = opening[2]!.trim();
      fence = ["", "sh", "bash", "shell", "console"].includes(lang) ? opening[1]! : `skip:${opening[1]!}`;
      return;
    }
    if (fence !== null) {
      if (raw.trim() === fence.replace(/^skip:/, "")) {
        fence = null;
        return;
      }
      if (fence.startsWith("skip:")) return;
      const continued = pending ? `${pending.text} ${raw.trim()}` : raw.trim();
      const start = pending?.line ?? i + 1;
      if (continued.endsWith("\\")) {
        pending = { line: start, text: continued.slice(0, -1).trimEnd() };
        return;
      }
      pending = null;
      const c = command(start, continued, "block");
      if (c) out.push(c);
    }
  });
  const text = prose.join("\n");
  // A code span ends at the same number of backticks, and never crosses a blank line (a paragraph's end).
  for (const m of text.matchAll(/(`+)((?:(?!\n[ \t]*\n)[^`])+?)\1/g)) {
    const line = text.slice(0, m.index).split("\n").length;
    const c = command(line, m[2]!.replace(/\s+/g, " ").trim(), "inline");
    if (c) out.push(c);
  }
  return out;
}

/** A subcommand's interface as its `--help` describes it. */
export interface CommandUsage {
  /** Flag name (without --) -> whether it takes a value. */
  flags: Map<string, boolean>;
  /** Whether the usage line names arguments besides [flags]. */
  positional: boolean;
}

/** Reads `Usage: <program> <command> [...]` and the `  --flag <value>  description` lines of a --help text. */
export function parseUsage(help: string): CommandUsage {
  const usage = /^Usage: \S+ \S+(.*)$/m.exec(help);
  const flags = new Map<string, boolean>([["help", false]]);
  for (const m of help.matchAll(/^ {2}--([a-z0-9][a-z0-9-]*)( <value>)?/gm)) flags.set(m[1]!, m[2] !== undefined);
  return { flags, positional: (usage?.[1] ?? "").replace("[flags]", "").trim() !== "" };
}

/** The subcommands a top-level --help lists under "Commands:". */
export function parseCommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? "";
  return [...section.matchAll(/^ {2}([a-z][a-z-]*) {2,}/gm)].map((m) => m[1]!);
}

/**
 * What is wrong with one shown `pangea` command, or null. A fenced block's
 * line is checked as it would run: known subcommand, known flags, a value
 * after each flag that takes one, no stray arguments. An inline span is often
 * a synopsis (`--out F [--records N]`): only its subcommand and flag names.
 */
export function problemWith(c: ShownCommand, commands: ReadonlyMap<string, CommandUsage>): string | null {
  const [, sub, ...args] = c.words;
  if (!sub || sub.startsWith("-")) return null; // `pangea --help`, or the bare name in prose
  const usage = commands.get(sub);
  if (!usage) return `unknown subcommand '${sub}' (known: ${[...commands.keys()].join(", ")})`;
  for (let k = 0; k < args.length; k++) {
    const arg = c.where === "inline" ? args[k]!.replace(/^\[+|\]+$/g, "") : args[k]!;
    if (!arg.startsWith("--")) {
      if (c.where === "block" && !usage.positional) return `'pangea ${sub}' takes no argument '${arg}'`;
      continue;
    }
    const [name, inlineValue] = arg.slice(2).split(/=(.*)/s);
    const takesValue = usage.flags.get(name!);
    if (takesValue === undefined) return `'pangea ${sub}' has no flag --${name}`;
    if (c.where === "block" && takesValue && inlineValue === undefined) {
      const value = args[k + 1];
      if (value === undefined || value.startsWith("--")) return `--${name} of 'pangea ${sub}' needs a value`;
      k++;
    }
  }
  return null;
}
