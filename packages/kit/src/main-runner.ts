import { PangeaError, EXIT } from "./errors.js";
import { UsageError } from "./config.js";
import { printable } from "./printable.js";

/**
 * The name a program gives itself in its usage and error lines: the `pangea`
 * CLI runs some services' entry points as its own subcommands (`pangea serve`)
 * and names them through PANGEA_CLI_PROGRAM, so what the user reads matches
 * what they typed.
 */
export function programName(own: string): string {
  const given = process.env.PANGEA_CLI_PROGRAM;
  return given && /^pangea [a-z-]+$/.test(given) ? given : own;
}

/**
 * Runs a service's main function and turns a thrown error into one line on
 * stderr and an exit code: 2 for usage errors, the error's own exit code for
 * PangeaErrors, 1 for anything else.
 */
export function runMain(program: string, main: () => Promise<void>, usage?: () => string): void {
  main().catch((err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`${program}: ${printable(err.message, 2048)}\n`);
      if (usage) process.stderr.write(`Run '${program} --help' for usage.\n`);
      process.exit(EXIT.usage);
    }
    if (err instanceof PangeaError) {
      process.stderr.write(`${program}: error ${err.code}: ${printable(err.message, 2048)}${err.hint ? ` (${err.hint})` : ""}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`${program}: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(EXIT.failure);
  });
}
