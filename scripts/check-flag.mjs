// The command line of a script that writes a generated file: nothing (write it),
// --check (only compare), or --help. Anything else is a mistake, not a request
// to rewrite the file: exit 2 naming it.
export function checkFlag(name, what) {
  const usage = `usage: node scripts/${name}.mjs [--check]\n  ${what}; --check only compares, exit 1 if it differs\n`;
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(usage);
    process.exit(0);
  }
  const unknown = args.find((a) => a !== "--check");
  if (unknown !== undefined) {
    process.stderr.write(`${name}: unknown argument ${JSON.stringify(unknown)}\n${usage}`);
    process.exit(2);
  }
  return args.includes("--check");
}
