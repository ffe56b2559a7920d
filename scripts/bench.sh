#!/usr/bin/env bash
# Benchmarks (`npm run bench`, or `npm run bench -- PART...` for some of them): builds the
# binary, starts the private engine of scripts/test-env.sh, runs each part (test/bench/PART.ts),
# each of which prints its own table and writes ${BENCH_OUT_DIR:-dist/bench}/PART.json, then
# test/bench/report.ts prints one combined table and writes summary.json. See docs/benchmarks.md.
#
# Parts, in the order they run (default: all; `scale` only if test/bench/scale.ts exists):
#   startup     compiled `dso version` and `dso secret list` against `docker version`/`--version`
#   local-mode  `dso up -d` against `docker compose up -d` (env file + file secrets), 1/10/50 services
#   vault       local vault set/get/list with 10, 1,000 and 10,000 secrets; file size
#   providers   provider resolution through a Worker and a child process (no engine needed)
#   agent       agent memory and resolve latency over its socket
#   rotation    webhook to new container serving, by strategy and phase; N containers at once
#   scale       as many managed containers as the host holds, event storm, one change for all
# A full run empties the output folder first; a run of some parts keeps the other parts' files,
# so the report shows the newest of each (with its date).
#
# Settings (environment; defaults in brackets):
#   BENCH_OUT_DIR                result folder [dist/bench]
#   DSO_BIN                      use this compiled dso instead of building one with `npm run build`
#   DSO_TEST_KEEP_ENGINE=1       leave the private engine running afterwards
#   DSO_TEST_ROOT, DSO_TEST_*    which private engine (see scripts/test-env.sh)
#   BENCH_STARTUP_ROUNDS         start-up runs per command [30]
#   BENCH_ROUNDS                 up/down rounds per size, local-mode [5]
#   BENCH_SERVICES               service counts, local-mode [1,10,50]
#   BENCH_VAULT_SIZES            secrets per vault [10,1000,10000]
#   BENCH_VAULT_ROUNDS           runs per vault figure [5]
#   BENCH_PROVIDER_SECRETS       secrets per resolve, providers [1000]
#   BENCH_PROVIDER_ROUNDS        rounds, providers [5]
#   BENCH_ROTATION_ROUNDS        rotations per strategy [5]
#   BENCH_ROTATION_CONTAINERS    containers sharing one secret, rotation part 2 (0 skips it) [100]
#   BENCH_ROTATION_CONCURRENCY   agent.rotation.concurrency for part 2 [4]
#   (scale's own settings are in test/bench/scale.ts)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

all=(startup local-mode vault providers agent rotation)
[[ -f test/bench/scale.ts ]] && all+=(scale)
parts=("$@")
for p in "${parts[@]}"; do
  [[ -f "test/bench/$p.ts" && "$p" != report && "$p" != result ]] || {
    printf 'bench: unknown part %q; parts: %s\n' "$p" "${all[*]}" >&2
    exit 2
  }
done
out="${BENCH_OUT_DIR:-dist/bench}"
export BENCH_OUT_DIR="$out"
mkdir -p "$out"
if [[ ${#parts[@]} -eq 0 ]]; then
  parts=("${all[@]}")
  rm -f "$out"/*.json
fi

[[ -d node_modules ]] || npm ci --no-audit --no-fund
if [[ -z "${DSO_BIN:-}" ]]; then
  npm run build >&2
  arch=$(uname -m); case "$arch" in x86_64|amd64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; esac
  export DSO_BIN="$PWD/dist/dso-linux-$arch"
fi
needs_engine=0
for p in "${parts[@]}"; do [[ "$p" == providers ]] || needs_engine=1; done
if [[ $needs_engine == 1 ]]; then
  # shellcheck source=scripts/test-env.sh
  source scripts/test-env.sh
  trap '[[ "${DSO_TEST_KEEP_ENGINE:-0}" == 1 ]] || dso_test_env_down' EXIT
fi

failed=()
for p in "${parts[@]}"; do
  printf '\n== bench: %s\n' "$p" >&2
  node_modules/.bin/bun "test/bench/$p.ts" || failed+=("$p")
done
node_modules/.bin/bun test/bench/report.ts
if [[ ${#failed[@]} -gt 0 ]]; then
  printf 'bench: these parts failed: %s\n' "${failed[*]}" >&2
  exit 1
fi
