import { PangeaError, EXIT } from "./errors.js";
import { UsageError, namedAsGiven } from "./config.js";
import { printable } from "./printable.js";
import { exitWithLauncher } from "./launcher-pipe.js";

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
  exitWithLauncher();
  main().catch((err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`${program}: ${printable(namedAsGiven(err.message), 2048)}\n`);
      if (usage) process.stderr.write(`Run '${program} --help' for usage.\n`);
      process.exit(EXIT.usage);
    }
    if (err instanceof PangeaError) {
      process.stderr.write(`${program}: error ${err.code}: ${printable(namedAsGiven(err.message), 2048)}${err.hint ? ` (${err.hint})` : ""}\n`);
      process.exit(err.exitCode);
    }
    // A system call's refusal (a port in use, a file where a directory should be): its message names the call and
    // the path or address, which is what the user needs; the stack is of no use to them.
    const sys = err as NodeJS.ErrnoException | null;
    if (sys instanceof Error && typeof sys.code === "string" && /^E[A-Z0-9]+$/.test(sys.code) && typeof sys.syscall === "string") {
      process.stderr.write(`${program}: error: ${printable(sys.message, 2048)}\n`);
      process.exit(EXIT.failure);
    }
    // The stack first and the one line last: a launcher reports a process's last line as why it exited.
    const stack = (err as Error)?.stack;
    if (stack) process.stderr.write(`${stack}\n`);
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    process.stderr.write(`${program}: internal error: ${printable(message, 2048)}${stack ? " (its stack is above)" : ""}\n`);
    process.exit(EXIT.failure);
  });
}
