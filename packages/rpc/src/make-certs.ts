#!/usr/bin/env node
// Usage: node make-certs.js DIR [host,...] [role:dir,...]
// The cluster's certificates for containers (docker-compose's one-shot
// `certs` service), where the pangea CLI is not installed: the same files
// `pangea certs --out DIR --hosts ...` writes, existing ones kept. Each
// `role:dir` then gets the CA's certificate and that role's certificate and
// key alone (`public:dir` the CA's certificate alone), so a container that
// mounts only its own directory holds neither the CA's key nor another
// role's key.
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { CA_FILE, writeClusterCerts } from "./security/cluster-certs.js";
import { SERVICE_ROLES } from "./security/roles.js";

const [dir, hosts, split] = process.argv.slice(2);
if (!dir) {
  process.stderr.write("usage: make-certs DIR [host,...] [role:dir,...]\n");
  process.exit(2);
}
const places = (split ? split.split(",") : []).map((pair) => {
  const [role, to] = pair.split(":");
  if (!to || !(role === "public" || (SERVICE_ROLES as readonly string[]).includes(role!))) {
    process.stderr.write(`make-certs: expected role:dir with a role of ${SERVICE_ROLES.join(", ")} or public, got ${JSON.stringify(pair)}\n`);
    process.exit(2);
  }
  return { role: role!, to };
});
const r = writeClusterCerts(dir, { hosts: hosts ? hosts.split(",") : [] });
process.stdout.write(`${r.caReused ? "kept the cluster CA" : "made a cluster CA"} in ${dir}; wrote ${r.written.length ? r.written.join(", ") : "nothing new"}\n`);
for (const { role, to } of places) {
  mkdirSync(to, { recursive: true, mode: 0o700 });
  const files = role === "public" ? [CA_FILE] : [CA_FILE, `${role}.crt`, `${role}.key`];
  // Copied every start: a role's directory always holds the CA's current files.
  for (const f of files) copyFileSync(join(dir, f), join(to, f));
  process.stdout.write(`${to}: ${files.join(", ")}\n`);
}
