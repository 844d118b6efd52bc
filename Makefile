# crisp — make help lists the targets. Every target that needs node_modules or system
# packages depends on `deps`, so `make run` and `make test` work on a fresh Debian 12 machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE_TEST := node --test --test-reporter=spec
export NODE_OPTIONS := --enable-source-maps

.PHONY: help deps deps-test proto build lint typecheck unit e2e test run bench install clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

deps: ## install system packages (apt) and node modules when missing
	@scripts/install-deps.sh

deps-test: ## also install what the tests need (registry server, htpasswd, busybox-static)
	@scripts/install-deps.sh --with-test

proto: deps ## generate TypeScript types from proto/ into src/generated/
	@rm -rf src/generated
	@npm run --silent proto >/dev/null
	@echo '{ "type": "commonjs" }' > src/generated/package.json

build: proto ## compile to dist/ (./bin/crisp runs dist/src/main.js)
	@rm -rf dist
	@npx tsc -p tsconfig.build.json
	@cp src/generated/package.json dist/src/generated/package.json

lint: proto ## eslint, prettier and the layering/cycle check
	@npx eslint .
	@npx prettier --check --log-level warn .
	@npx depcruise src --config .dependency-cruiser.cjs --output-type err

typecheck: proto ## tsc --noEmit
	@npx tsc --noEmit -p tsconfig.json

unit: build ## unit tests (node:test), beside the code in src/
	@$(NODE_TEST) $$(find dist/src -name '*.test.js' | sort)

e2e: deps-test build ## end-to-end tests against the real daemon binary (root)
	@$(NODE_TEST) --test-concurrency=1 $$(find dist/test/e2e -name '*.test.js' | sort)

test: deps-test lint typecheck unit e2e ## everything CI runs: lint, typecheck, unit and e2e tests

run: build ## start crisp in the foreground with /etc/crisp/crisp.toml (defaults if missing)
	@scripts/install-cni-config.sh
	./bin/crisp

bench: deps-test build ## latency percentiles and memory for the CRI operations, pods, containers, events, streaming and recovery
	@node dist/bench/run.js
	@node dist/bench/pods.js
	@node dist/bench/events.js
	@node dist/bench/streaming.js
	@node dist/bench/recovery.js

install: build ## install crisp, its config and the systemd unit under /usr/local and /etc
	@scripts/install.sh

clean: ## remove build output
	rm -rf dist src/generated
