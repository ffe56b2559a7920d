#!/usr/bin/env bash
# The project's one test command (`npm test`): dependencies, the test environment (a private
# Docker engine, see scripts/test-env.sh), typecheck, build, then every test under test/.
#
#   bash scripts/test.sh                  everything
#   bash scripts/test.sh test/unit        only these paths (any `bun test` arguments pass through)
#   DSO_TEST_KEEP_ENGINE=1 bash scripts/test.sh ...   leave the engine running afterwards,
#                                         for a quick rerun or to inspect it (then: source
#                                         scripts/test-env.sh, and docker ps)
#   DSO_TEST_TIMEOUT_MS=...               per-test timeout unless --timeout is given (120000)
#   DSO_FUZZ_SEED=N DSO_HARDENING_SOAK_SEED=N   replay a fuzz or soak run (CI takes both from
#                                         the commit; elsewhere they are random)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[test] %s\n' "$*" >&2; }

# In CI always from the lock file; locally only when node_modules is missing or stale.
if [[ -n "${CI:-}" || ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund >&2
fi

# Set before the environment exists: a set-up that fails half-way still stops its engine.
stop_engine_on_exit() {
  local status=$?
  if [[ "${DSO_TEST_KEEP_ENGINE:-0}" != 1 ]] && declare -F dso_test_env_down >/dev/null; then
    dso_test_env_down || log "warning: could not stop the test engine"
  fi
  exit "$status"
}
trap stop_engine_on_exit EXIT
# A CI time-out or a closed terminal: exit through the EXIT trap too.
trap 'exit 143' TERM
trap 'exit 129' HUP

# shellcheck source=scripts/test-env.sh
source scripts/test-env.sh

log "typecheck"
npx --no-install tsc --noEmit

log "build"
npm run build

case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *)
    log "unsupported machine $(uname -m)"
    exit 1
    ;;
esac
export DSO_BIN="$PWD/dist/dso-linux-$arch"
[[ -x "$DSO_BIN" ]] || {
  log "the build did not produce $DSO_BIN"
  exit 1
}

# bun test ignores a `timeout` under [test] in bunfig.toml (measured with bun 1.4.5: tests still
# stop at the default 5 s), and tests against a real engine need longer: give it on the command
# line unless the caller did.
args=("$@")
if [[ " $* " != *" --timeout"* ]]; then
  args=(--timeout "${DSO_TEST_TIMEOUT_MS:-120000}" "${args[@]}")
fi

# Fuzz and soak seeds: random on a developer's machine (every run explores new input), but in CI
# taken from the commit, so that a commit's CI run is the same every time and can be replayed
# before pushing (`CI=1 npm test`). A failure prints its seed either way.
if [[ -n "${CI:-}" ]] && commit=$(git rev-parse --short=7 HEAD 2>/dev/null); then
  export DSO_FUZZ_SEED="${DSO_FUZZ_SEED:-$((16#$commit))}"
  export DSO_HARDENING_SOAK_SEED="${DSO_HARDENING_SOAK_SEED:-$((16#$commit))}"
  log "seeds from commit $commit: DSO_FUZZ_SEED=$DSO_FUZZ_SEED DSO_HARDENING_SOAK_SEED=$DSO_HARDENING_SOAK_SEED"
fi

log "bun test ${args[*]}"
status=0
node_modules/.bin/bun test "${args[@]}" || status=$?
exit "$status"
