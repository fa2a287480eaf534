import type { Reporter, TestModule } from "vitest/node";

interface Failure {
  where: string;
  message: string;
}

/** An error's first line, without the terminal's colours: the list stays one line per failure. */
function firstLine(err: { message?: string; name?: string } | undefined): string {
  // eslint-disable-next-line no-control-regex
  const text = (err?.message ?? err?.name ?? "unknown error").replace(/\x1b\[[0-9;]*m/g, "");
  const line = text.split("\n").find((l) => l.trim()) ?? text;
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/**
 * Prints, as a run's last lines, what failed (one line each: file, test or
 * hook, the error's first line) and then "tests: N passed, N failed, N
 * skipped". Tools that keep only a run's tail (CI logs) then still name every
 * failure, which the default reporter prints far above it. A hook that fails
 * (its suite's tests then show as skipped) and a file that cannot load count
 * as failures.
 */
export default class CountReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let skipped = 0;
    const failures: Failure[] = [];
    for (const m of modules) {
      const file = m.relativeModuleId;
      for (const t of m.children.allTests()) {
        const r = t.result();
        if (r.state === "passed") passed++;
        else if (r.state === "failed") failures.push({ where: `${file} > ${t.fullName}`, message: firstLine(r.errors?.[0]) });
        else skipped++;
      }
      for (const err of m.errors()) failures.push({ where: file, message: firstLine(err) });
      for (const s of m.children.allSuites()) for (const err of s.errors()) failures.push({ where: `${file} > ${s.fullName}`, message: firstLine(err) });
    }
    // An unhandled error fails the run even when every test passed.
    for (const err of unhandledErrors) failures.push({ where: "unhandled", message: firstLine(err as Error) });
    const lines = failures.map((f) => `FAILED ${f.where}: ${f.message}`);
    process.stdout.write(`\n${lines.length ? `${lines.join("\n")}\n` : ""}tests: ${passed} passed, ${failures.length} failed, ${skipped} skipped\n`);
  }
}
