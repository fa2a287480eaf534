#!/usr/bin/env node
// Usage: node make-certs.js DIR [host,...]
// The cluster's certificates for containers (docker-compose's one-shot
// `certs` service), where the pangea CLI is not installed: the same files
// `pangea certs --out DIR --hosts ...` writes, existing ones kept.
import { writeClusterCerts } from "./security/cluster-certs.js";

const [dir, hosts] = process.argv.slice(2);
if (!dir) {
  process.stderr.write("usage: make-certs DIR [host,...]\n");
  process.exit(2);
}
const r = writeClusterCerts(dir, { hosts: hosts ? hosts.split(",") : [] });
process.stdout.write(`${r.caReused ? "kept the cluster CA" : "made a cluster CA"} in ${dir}; wrote ${r.written.length ? r.written.join(", ") : "nothing new"}\n`);
