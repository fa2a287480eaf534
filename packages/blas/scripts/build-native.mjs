#!/usr/bin/env node
// Builds @pangea/blas's N-API addon against the machine's OpenBLAS with the
// system C compiler. node-gyp is not used: it downloads Node's headers from
// nodejs.org, which a machine with only the npm registry cannot reach; the
// N-API headers come from the node-api-headers package instead.
//
// A machine without a C compiler or OpenBLAS gets no addon and Pangea uses
// the WebAssembly kernels: this script then prints why and exits 0, unless
// PANGEA_NATIVE_BLAS=required (CI sets it, so a broken build fails there).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, statSync, writeFileSync, renameSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(here, "native", "blas.c");
const outDir = join(here, "native", "build");
const out = join(outDir, "pangea_blas.node");
const statusFile = join(outDir, "status.json");
const required = process.env.PANGEA_NATIVE_BLAS === "required";

function finish(built, reason) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(statusFile, `${JSON.stringify({ built, reason })}\n`);
  if (!built) {
    const line = `@pangea/blas: native BLAS not built (${reason}); the WebAssembly kernels will be used. To build it: apt-get install gcc libopenblas-pthread-dev`;
    if (required) {
      console.error(`${line} [PANGEA_NATIVE_BLAS=required]`);
      process.exit(1);
    }
    console.error(line);
  }
  process.exit(0);
}

if (process.env.PANGEA_NATIVE_BLAS === "off") finish(false, "PANGEA_NATIVE_BLAS=off");
// Up to date when newer than the source, its header and this script (the compiler flags live here).
const inputs = [source, join(here, "native", "id-hash.h"), fileURLToPath(import.meta.url)];
if (existsSync(out) && inputs.every((f) => statSync(out).mtimeMs > statSync(f).mtimeMs) && existsSync(statusFile)) process.exit(0);

const require = createRequire(import.meta.url);
let include;
try {
  include = join(dirname(require.resolve("node-api-headers/package.json")), "include");
} catch {
  include = join(dirname(process.execPath), "..", "include", "node");
}
if (!existsSync(join(include, "node_api.h"))) finish(false, `no N-API headers at ${include}`);
const cc = process.env.CC || "cc";
try {
  execFileSync(cc, ["--version"], { stdio: "ignore" });
} catch {
  finish(false, `no C compiler ('${cc}')`);
}
mkdirSync(outDir, { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
try {
  // -shared without -z defs: the napi_* symbols resolve against the node
  // binary when the addon is loaded.
  execFileSync(cc, ["-O3", "-fPIC", "-shared", "-std=c11", "-ffp-contract=off", "-D_POSIX_C_SOURCE=199309L", "-DNODE_GYP_MODULE_NAME=pangea_blas", `-I${include}`, source, "-o", tmp, "-lopenblas", "-lm"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
} catch (err) {
  const stderr = String(err.stderr ?? "");
  const missing = /cblas\.h/.test(stderr) ? "OpenBLAS headers (cblas.h) not found" : /-lopenblas/.test(stderr) ? "libopenblas not found" : stderr.split("\n").find((l) => /error/.test(l)) ?? "compile failed";
  finish(false, missing.trim());
}
renameSync(tmp, out);
finish(true, "built");
