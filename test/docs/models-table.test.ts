import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ARCHITECTURES, ARCHITECTURE_NAMES, architectureConfig } from "@pangea/model";
import { ROOT } from "../support/processes.js";

/**
 * The README's Models section names the architectures in prose a generator cannot write (what each is, its
 * hyper-parameters' meaning), so it is checked against the registry instead: an architecture added by the README's
 * recipe fails here until its row and the sentences that list architectures by kind name it.
 */
const readme = readFileSync(join(ROOT, "README.md"), "utf8");
const models = readme.slice(readme.indexOf("\n## Models\n"), readme.indexOf("\n### Adding an architecture\n"));
const flat = models.replace(/\s+/g, " ");
const names = (list: string) => [...list.matchAll(/`([a-z0-9-]+)`|\b([a-z][a-z0-9]*(?:-[a-z0-9]+)+|dlrm|deepfm|mmoe)\b/g)].map((m) => m[1] ?? m[2]!);
const sorted = (xs: readonly string[]) => [...xs].sort();
const mixed = ARCHITECTURE_NAMES.filter((n) => !ARCHITECTURES.get(n)!.oneDim);
const oneDim = ARCHITECTURE_NAMES.filter((n) => ARCHITECTURES.get(n)!.oneDim);
const multiTask = ARCHITECTURE_NAMES.filter((n) => ARCHITECTURES.get(n)!.multiTask);

describe("README.md's Models section names every registered architecture", () => {
  it("the table has one row per architecture of the registry", () => {
    const table = models.slice(models.indexOf("| `--model` | what it is |")).split("\n\n")[0]!;
    const rows = [...table.matchAll(/^\| `([^`]+)`/gm)].map((m) => m[1]!).filter((n) => n !== "--model");
    expect(sorted(rows)).toEqual(sorted(ARCHITECTURE_NAMES));
  });

  it("each layer list's entry says whether it may be empty, and what an empty one means, as the schema decides", () => {
    const table = models.slice(models.indexOf("| `--model` | what it is |")).split("\n\n")[0]!;
    for (const name of ARCHITECTURE_NAMES) {
      const row = table.split("\n").find((r) => r.startsWith(`| \`${name}\``));
      // Named, not a TypeError, for an architecture added without its row (the test above names it too).
      if (row === undefined) expect.fail(`the Models table has no row for ${name}`);
      const { name: _, ...defaults } = architectureConfig(name, {});
      for (const field of Object.keys(defaults).filter((k) => Array.isArray(defaults[k]))) {
        // The field's parenthesis: "`deepMlp` ([64, 32]; ...)", brackets and parentheses nested inside.
        const start = row.indexOf(`\`${field}\` (`);
        expect(start, `${name}'s row names ${field}`).toBeGreaterThan(0);
        let depth = 0;
        let end = start + field.length + 3;
        for (; end < row.length; end++) {
          if (row[end] === "(") depth++;
          else if (row[end] === ")" && --depth === 0) break;
        }
        const entry = row.slice(start, end + 1);
        let emptyTaken = true;
        try {
          architectureConfig(name, { [field]: [] });
        } catch {
          emptyTaken = false;
        }
        expect(entry.includes("at least one layer"), `${name} ${entry}: "at least one layer" only where [] is refused`).toBe(!emptyTaken);
        expect(entry.includes("`[]`:"), `${name} ${entry}: what \`[]\` means where it is taken`).toBe(emptyTaken);
      }
    }
  });

  it("the sentences on mixed embedding dims list the architectures that take them and those that need one dim", () => {
    const takes = /\. ((?:`[a-z0-9-]+`(?:, | and ))+`[a-z0-9-]+`) take any mix/.exec(flat);
    const multiply = /; ((?:`[a-z0-9-]+`(?:, | and ))*`[a-z0-9-]+`) multiply slots with each other/.exec(flat);
    const example = /where the model's is --embedding-dim 16; ([a-z0-9, -]+?) take mixed dims/.exec(flat);
    expect(takes, "the sentence '... take any mix'").not.toBeNull();
    expect(multiply, "the sentence '... multiply slots with each other'").not.toBeNull();
    expect(example, "the quoted refusal '...; X take mixed dims'").not.toBeNull();
    expect(sorted(names(takes![1]!))).toEqual(sorted(mixed));
    expect(sorted(names(multiply![1]!))).toEqual(sorted(oneDim));
    expect(sorted(example![1]!.split(/, | and /))).toEqual(sorted(mixed));
  });

  it("the paragraph on several tasks names the architectures built for them, and the others as putting heads on their shared part", () => {
    const built = /while ((?:`[a-z0-9-]+`(?:, | and ))*`[a-z0-9-]+`) \(built for several tasks/.exec(flat);
    expect(built, "the sentence '... (built for several tasks'").not.toBeNull();
    expect(sorted(names(built![1]!))).toEqual(sorted(multiTask));
    const heads = /a column per task: ((?:`[a-z0-9-]+`(?:, | and ))*`[a-z0-9-]+`) put T heads/.exec(flat);
    expect(heads, "the sentence '... put T heads'").not.toBeNull();
    expect(sorted(names(heads![1]!))).toEqual(sorted(ARCHITECTURE_NAMES.filter((n) => !ARCHITECTURES.get(n)!.multiTask)));
  });
});
