#!/usr/bin/env bash
# Pangea's main job on one machine: install what is needed, build, then train
# a CTR model end to end on a local cluster (1 orchestrator, 1 compute,
# N trainers as local processes), print loss/AUC/logloss/throughput, and stop
# every process it started. Any flag is passed to `pangea run`.
set -euo pipefail
cd "$(dirname "$0")"

PNPM_VERSION=10.34.9

usage() {
  cat <<'TXT'
Usage: ./setup.sh [flags]

Installs dependencies (pnpm, node modules), builds, and runs a training job
on a local cluster, then prints held-out AUC, logloss and samples/s.

Common flags (all of `pangea run --help` are accepted):
  --trainers N            trainer processes (workers)                 default 2
  --steps N               synchronous training steps                  default 500
  --batch-size N          samples per batch (one per trainer per step) default 1024
  --data PATH[,PATH]      data instead of synthetic: files, directories or quoted globs
  --format F              criteo (TSV), instance, example, examplebatch or parquet  default criteo
  --max-memory-mb N       MiB a --data source may hold in memory      default 1024
  --model NAME            an architecture (pangea run --help lists them)  default dlrm
  --model-config FILE     JSON of the model's hyper-parameters (see README)
  --eval-records N        held-out synthetic records                  default 50000
  --orchestrator-port P   orchestrator port (0 = any free port)       default 0
  --compute-port P        compute port (0 = any free port)            default 0
  --backend B             auto, tensorflow, wasm or cpu               default auto
  --skip-install          do not run the install and build steps
  --help                  this text
TXT
}

skip_install=0
args=()
for a in "$@"; do
  case "$a" in
    --help|-h) usage; exit 0 ;;
    --skip-install) skip_install=1 ;;
    *) args+=("$a") ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }

# Compute checksums its record cache with zlib.crc32: Node 20.15 or newer on
# 20, 22.2 or newer after that (21 and 22.0-22.1 lack it). Asked of Node itself.
if [ "$(node -p 'typeof require("zlib").crc32 === "function" ? 1 : 0' 2>/dev/null || echo 0)" != 1 ]; then
  echo "setup.sh: Node.js 20.15+ (or 22.2+) is required: compute needs zlib.crc32 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# The trainer's and serving's matmuls run on OpenBLAS through a native addon
# when a C compiler and OpenBLAS's headers are there (about 1.7x the
# samples/s of the WebAssembly kernels); without them Pangea runs on wasm.
native_blas_ready() {
  command -v cc >/dev/null && { [ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/aarch64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ]; }
}

if [ "$skip_install" -eq 0 ]; then
  if [ "${PANGEA_NATIVE_BLAS:-}" != off ] && ! native_blas_ready; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      step "installing the native BLAS addon's build dependencies (gcc libc6-dev libopenblas-pthread-dev)"
      export DEBIAN_FRONTEND=noninteractive
      if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev libopenblas-pthread-dev >/dev/null; }; then
        echo "setup.sh: could not install gcc libc6-dev libopenblas-pthread-dev; training on the WebAssembly kernels" >&2
      fi
    else
      echo "setup.sh: no C compiler or OpenBLAS headers, so training runs on the slower WebAssembly kernels." >&2
      echo "setup.sh: for the native kernels run: sudo apt-get install gcc libc6-dev libopenblas-pthread-dev  (then ./setup.sh again)" >&2
    fi
  fi
  if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
    step "installing pnpm $PNPM_VERSION"
    npm install -g "pnpm@$PNPM_VERSION" >/dev/null
  fi
  step "installing dependencies"
  pnpm install --frozen-lockfile
  step "building"
  pnpm run build
fi

step "training (pangea run ${args[*]:-})"
exec node packages/cli/dist/main.js run "${args[@]}"
