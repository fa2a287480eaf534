#!/usr/bin/env node
// Validates every Kubernetes object under infra/k8s against the Kubernetes
// OpenAPI schemas (kubernetes-models), and checks that the kustomization
// lists exactly the manifest files. Exit 1 with one line per problem.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const root = process.argv[2] ?? fileURLToPath(new URL("../infra/k8s/", import.meta.url));
const problems = [];
const objects = [];

// apiVersion "apps/v1" lives at kubernetes-models/apps/v1, "v1" at kubernetes-models/v1.
async function modelOf(apiVersion, kind) {
  try {
    const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
    return mod[kind];
  } catch {
    return null;
  }
}

const files = readdirSync(root).filter((f) => f.endsWith(".yaml")).sort();
for (const file of files) {
  const docs = parseAllDocuments(readFileSync(join(root, file), "utf8"));
  for (const [i, doc] of docs.entries()) {
    const where = `${file}#${i + 1}`;
    if (doc.errors.length) {
      problems.push(`${where}: YAML: ${doc.errors[0].message.split("\n")[0]}`);
      continue;
    }
    const obj = doc.toJS();
    if (!obj) continue;
    if (obj.kind === "Kustomization") {
      const listed = [...(obj.resources ?? [])].sort();
      const manifests = files.filter((f) => f !== file);
      if (listed.join() !== manifests.join()) problems.push(`${where}: resources ${listed.join(", ")} differ from the manifests ${manifests.join(", ")}`);
      continue;
    }
    const Model = await modelOf(obj.apiVersion, obj.kind);
    if (!Model) {
      problems.push(`${where}: unknown kind ${obj.apiVersion}/${obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
      objects.push(`${obj.kind}/${obj.metadata?.name}`);
    } catch (err) {
      problems.push(`${where} ${obj.kind}/${obj.metadata?.name}: ${String(err.message).split("\n").slice(0, 3).join(" ")}`);
    }
  }
}

if (problems.length) {
  for (const p of problems) process.stderr.write(`k8s-validate: ${p}\n`);
  process.exit(1);
}
process.stdout.write(`k8s-validate: ${objects.length} objects valid: ${objects.join(", ")}\n`);
