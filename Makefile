# Pangea's developer entry points. `make help` lists them.
SHELL := /bin/bash
PNPM_VERSION := 10.34.9
PNPM := pnpm
COMPOSE_PROJECT ?= pangea
export COMPOSE_PROJECT

.DEFAULT_GOAL := help
.PHONY: help deps tools schema-gen schema-check build typecheck test e2e bench bench-training bench-models up down status logs docker-build docker-up docker-down k8s-validate clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

tools: ## install pnpm (pinned) and, as root, Debian's capnproto compiler when missing
	@[ "$$(pnpm --version 2>/dev/null)" = "$(PNPM_VERSION)" ] || npm install -g pnpm@$(PNPM_VERSION)
	@command -v capnpc >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq capnproto) >/dev/null; \
	  else echo "make: the Cap'n Proto compiler is missing: run 'sudo apt-get install capnproto'" >&2; exit 1; fi; }

deps: tools ## install node modules from the lockfile
	$(PNPM) install --frozen-lockfile

schema-gen: ## regenerate TypeScript from schemas/ (capnp + proto)
	$(PNPM) run schema-gen

schema-check: ## fail if the committed generated code is stale
	$(PNPM) run schema-check

build: ## compile every package and service
	$(PNPM) run build

typecheck: build ## type-check everything (the build is the type check)

test: deps build schema-check ## run the whole test suite (README's test command)
	$(PNPM) exec vitest run

e2e: build ## run only the multi-process cluster tests
	$(PNPM) exec vitest run test/e2e

bench: build ## print data-pipeline, trainer, serving, table and training-vs-PyTorch figures (RECORDS=100000 ROWS=10000000)
	node scripts/bench.mjs $(or $(RECORDS),100000)
	node scripts/bench-tables.mjs $(or $(ROWS),10000000)
	node scripts/bench-streamed.mjs
	node scripts/bench-parse.mjs
	node bench/training/run.mjs

bench-training: build ## DLRM Kaggle config: one trainer, the cluster and PyTorch side by side, then every architecture vs its PyTorch twin; writes bench-results/training{.json,.svg,-architectures.json}
	node bench/training/run.mjs

bench-models: build ## every architecture (ARCH=a,b picks some): the cluster vs its PyTorch twin, same data/config/steps; writes bench-results/training-architectures.json
	node bench/training/run.mjs --models-only

up: build ## start a local cluster in the background (ARGS="--steps 200 ...")
	./pangea up $(ARGS)

down: ## stop the local cluster
	./pangea down

status: ## show the local job's status
	./pangea status

logs: ## follow the logs (local cluster; DOCKER=1 for the compose cluster)
	@if [ -n "$(DOCKER)" ]; then scripts/docker-cluster.sh logs; else tail -n 50 -F .pangea/logs/*.log; fi

docker-build: ## build the service images (needs a Docker engine; make docker-up builds them too)
	@scripts/docker-cluster.sh build

docker-up: ## build and start the cluster in Docker (DATA=f.tsv FORMAT=criteo STEPS=N ...; see scripts/docker-cluster.sh)
	@scripts/docker-cluster.sh up

docker-down: ## remove the Docker cluster (containers, network, volumes; KEEP_VOLUMES=1 keeps the volumes)
	@scripts/docker-cluster.sh down

k8s-validate: deps ## validate infra/k8s against the Kubernetes schemas
	node scripts/k8s-validate.mjs

clean: ## remove build output, logs and checkpoints
	rm -rf packages/*/dist services/*/dist packages/*/tsconfig.tsbuildinfo services/*/tsconfig.tsbuildinfo .pangea
