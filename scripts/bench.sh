#!/usr/bin/env bash
# Benchmarks (`npm run bench`): builds the binary, starts the private engine of
# scripts/test-env.sh, and prints the figures: Local Mode (start-up, up -d against plain Compose),
# provider resolution across the isolation boundary, the agent (memory, API latency) and
# rotation (webhook to serving, by phase; 100 containers sharing a secret).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -d node_modules ]] || npm ci --no-audit --no-fund
npm run build >&2
arch=$(uname -m); case "$arch" in x86_64|amd64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; esac
export DSO_BIN="$PWD/dist/dso-linux-$arch"
# shellcheck source=scripts/test-env.sh
source scripts/test-env.sh
trap '[[ "${DSO_TEST_KEEP_ENGINE:-0}" == 1 ]] || dso_test_env_down' EXIT
node_modules/.bin/bun test/bench/local-mode.ts
node_modules/.bin/bun test/bench/providers.ts
node_modules/.bin/bun test/bench/agent.ts
node_modules/.bin/bun test/bench/rotation.ts
