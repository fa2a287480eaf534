import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseCommands, parseUsage, problemWith, shellWords, shownCommands, type CommandUsage } from "../support/readme-commands.js";
import { ROOT, runNode } from "../support/processes.js";

/**
 * The README's examples must run as written: every `pangea` / `./pangea`
 * command it shows names a subcommand the CLI has and only flags that
 * subcommand accepts (as the CLI's own --help lists them), and every `make`
 * target it names is in the Makefile.
 */
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const CLI = join(ROOT, "packages/cli/dist/main.js");
const shown = shownCommands(README);
const isPangea = (w: string) => w === "pangea" || w === "./pangea";

async function help(args: string[]): Promise<string> {
  // Generous: some subcommands' help comes from the service they start, and a loaded 2-core machine runs a dozen at once.
  const r = await runNode(CLI, [...args, "--help"], { timeoutMs: 150_000 });
  expect(r.code, `pangea ${args.join(" ")} --help: ${r.stderr}`).toBe(0);
  return r.stdout;
}

describe("README commands", () => {
  const commands = new Map<string, CommandUsage>();

  beforeAll(async () => {
    const names = parseCommands(await help([]));
    const usages = await Promise.all(names.map((n) => help([n])));
    names.forEach((n, i) => commands.set(n, parseUsage(usages[i]!)));
  }, 180_000);

  it("reads the CLI's subcommands and their flags from its --help", () => {
    expect([...commands.keys()]).toEqual(["run", "train", "up", "down", "status", "gen-data", "export", "serve", "predict", "bench", "certs"]);
    expect(commands.get("status")!.flags).toEqual(new Map([["orchestrator", true], ["json", false], ["tls-dir", true], ["help", false]]));
    expect(commands.get("bench")!.positional).toBe(true);
    expect(commands.get("run")!.positional).toBe(false);
  });

  it("finds the README's pangea commands in fenced blocks and inline code", () => {
    const blocks = shown.filter((c) => c.where === "block" && isPangea(c.words[0]!));
    // The serving walk-through and the Docker section at least.
    expect(blocks.map((c) => c.words[1])).toEqual(expect.arrayContaining(["run", "export", "serve", "status"]));
    expect(shown.filter((c) => c.where === "inline" && isPangea(c.words[0]!)).length).toBeGreaterThan(10);
  });

  it("every pangea command the README shows names a subcommand and only flags it accepts", () => {
    const problems = shown
      .filter((c) => isPangea(c.words[0]!))
      .map((c) => ({ c, problem: problemWith(c, commands) }))
      .filter((p) => p.problem !== null)
      .map(({ c, problem }) => `README.md:${c.line}: ${c.text}\n    ${problem}`);
    expect(problems).toEqual([]);
  });

  it("every make target the README names is in the Makefile, and its list of targets is make help's", () => {
    const makefile = readFileSync(join(ROOT, "Makefile"), "utf8");
    const targets = new Set([...makefile.matchAll(/^([a-z][a-z0-9-]*):/gm)].map((m) => m[1]!));
    expect(targets.has("test")).toBe(true);
    const named = shown
      .filter((c) => c.words[0] === "make")
      .flatMap((c) => c.words.slice(1).filter((w) => !w.includes("=") && !w.startsWith("-")).map((target) => ({ c, target })));
    // "Make targets: `make help` lists them — `schema-gen`, `build`, ...": the list names targets by themselves.
    const list = /^Make targets:[^\n]*(?:\n(?!\n)[^\n]*)*/m.exec(README)?.[0] ?? "";
    expect(list, "the README's list of make targets").not.toBe("");
    const listed = [...list.matchAll(/`([a-z][a-z0-9-]*)`/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(5);
    expect(listed.length).toBeGreaterThan(5);
    // The list stands for `make help`'s: the targets with a `## description`.
    const helped = [...makefile.matchAll(/^([a-z][a-z0-9-]*):.*## /gm)].map((m) => m[1]!).filter((t) => t !== "help");
    const wrong = [
      ...named.filter(({ target }) => !targets.has(target)).map(({ c, target }) => `README.md:${c.line}: ${c.text} (no target '${target}')`),
      ...listed.filter((t) => !targets.has(t)).map((t) => `README.md's list of make targets: no target '${t}'`),
      ...helped.filter((t) => !listed.includes(t)).map((t) => `README.md's list of make targets leaves out '${t}', which make help lists`),
    ];
    expect(wrong).toEqual([]);
  });
});

describe("reading commands out of Markdown", () => {
  it("splits a line as the shell would: quotes, comments, VAR=value prefixes, continuations", () => {
    expect(shellWords(`./pangea run --data "a b.tsv" --job-id 'x' # a comment`)).toEqual(["./pangea", "run", "--data", "a b.tsv", "--job-id", "x"]);
    const md = ["```sh", "PANGEA_SKIP_DOCKER=1 make test", "./pangea run \\", "  --steps 5", "```", "```json", '{"make": "pangea run --nope"}', "```", "Run `pangea status --json` or `make e2e`."].join("\n");
    expect(shownCommands(md).map((c) => [c.line, c.where, c.words])).toEqual([
      [2, "block", ["make", "test"]],
      [3, "block", ["./pangea", "run", "--steps", "5"]],
      [9, "inline", ["pangea", "status", "--json"]],
      [9, "inline", ["make", "e2e"]],
    ]);
  });

  it("names what is wrong with a command: subcommand, flag, missing value, stray argument; synopses are checked for names only", () => {
    const commands = new Map([
      ["status", parseUsage("Usage: pangea status [flags]\n\nFlags:\n  --orchestrator <value>   where\n  --json   as JSON\n")],
      ["bench", parseUsage("Usage: pangea bench [records]\n")],
    ]);
    const check = (text: string, where: "block" | "inline" = "block") => problemWith({ line: 1, text, words: shellWords(text), where }, commands);
    expect(check("./pangea status --orchestrator 127.0.0.1:50051 --json")).toBeNull();
    expect(check("./pangea status --orchestrator=127.0.0.1:50051")).toBeNull();
    expect(check("./pangea bench 1000")).toBeNull();
    expect(check("./pangea stats")).toBe("unknown subcommand 'stats' (known: status, bench)");
    expect(check("./pangea status --address x")).toBe("'pangea status' has no flag --address");
    expect(check("./pangea status --orchestrator")).toBe("--orchestrator of 'pangea status' needs a value");
    expect(check("./pangea status --json yes")).toBe("'pangea status' takes no argument 'yes'");
    expect(check("pangea status [--orchestrator host:port] [--json]", "inline")).toBeNull();
    expect(check("pangea status [--orchestratr host:port]", "inline")).toBe("'pangea status' has no flag --orchestratr");
  });
});
