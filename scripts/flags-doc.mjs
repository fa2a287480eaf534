#!/usr/bin/env node
// Writes README.md's configuration tables from the services' flag
// declarations (their zod schemas, see @pangea/kit's flag()), between
// <!-- flags:SERVICE --> and <!-- /flags:SERVICE --> markers; with --check,
// exits 1 naming the first table that differs (the test suite runs it).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkFlag } from "./check-flag.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const SERVICES = ["orchestrator", "compute", "trainer", "serving"];
const check = checkFlag("flags-doc", "rewrites README.md's flag tables from the services' declarations");
const readmePath = join(root, "README.md");
let readme = readFileSync(readmePath, "utf8");

const cell = (s) => s.replace(/\|/g, "\\|").replace(/</g, "&lt;").replace(/>/g, "&gt;");

for (const svc of SERVICES) {
  const { FLAGS } = await import(join(root, "services", svc, "dist", "config.js"));
  const rows = Object.entries(FLAGS).map(([name, f]) => `| \`--${name}\` | ${f.env ? `\`${f.env}\`` : ""} | ${f.boolean ? "off" : cell(f.default ?? "")} | ${cell(f.description)} |`);
  const table = ["| flag | env | default | meaning |", "|---|---|---|---|", ...rows].join("\n");
  const open = `<!-- flags:${svc} -->`;
  const close = `<!-- /flags:${svc} -->`;
  const a = readme.indexOf(open);
  const b = readme.indexOf(close);
  if (a < 0 || b < a) {
    console.error(`flags-doc: README.md has no ${open} ... ${close} block`);
    process.exit(1);
  }
  const current = readme.slice(a + open.length, b).trim();
  if (current !== table) {
    if (check) {
      console.error(`flags-doc: README.md's ${svc} flag table differs from the flags ${svc} declares; run: node scripts/flags-doc.mjs`);
      process.exit(1);
    }
    readme = `${readme.slice(0, a + open.length)}\n${table}\n${readme.slice(b)}`;
  }
}
if (!check) writeFileSync(readmePath, readme);
