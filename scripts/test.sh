#!/usr/bin/env bash
# The project's one test command (`npm test`): dependencies, typecheck, build, the test
# environment (a private Docker engine, see scripts/test-env.sh), then every test under test/.
#
#   bash scripts/test.sh                  everything on the engine20 profile (Debian bookworm's
#                                         engine 20.10, Compose 2.26), then test/integration and
#                                         the leak scan again on engine28 (engine 28.5, Compose
#                                         2.40, from Debian sid's packages); each engine is
#                                         stopped when its part is done
#   bash scripts/test.sh test/unit        only these paths, on engine20 (any `bun test`
#                                         arguments pass through)
#   DSO_TEST_PROFILE=engine28 bash scripts/test.sh test/integration/x.test.ts
#                                         only that profile (engine20 or engine28); `all` runs the
#                                         given paths on both
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

# The profiles to run, each with its `bun test` paths: see the usage above.
profiles=()
case "${DSO_TEST_PROFILE:-}" in
  "")
    if (($# == 0)); then profiles=(engine20 engine28); else profiles=(engine20); fi
    ;;
  all) profiles=(engine20 engine28) ;;
  engine20 | engine28) profiles=("$DSO_TEST_PROFILE") ;;
  *)
    log "DSO_TEST_PROFILE=$DSO_TEST_PROFILE: use engine20, engine28 or all"
    exit 2
    ;;
esac
# What the second engine reruns in a full run: what talks to the engine and Compose.
readonly matrix_paths=(test/integration test/hardening/leak-scan.test.ts)

# A CI time-out or a closed terminal: exit through the EXIT traps (each part's stops its engine).
trap 'exit 143' TERM
trap 'exit 129' HUP

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
timeout_args=()
if [[ " $* " != *" --timeout"* ]]; then
  timeout_args=(--timeout "${DSO_TEST_TIMEOUT_MS:-120000}")
fi

# Fuzz and soak seeds: random on a developer's machine (every run explores new input), but in CI
# taken from the commit, so that a commit's CI run is the same every time and can be replayed
# before pushing (`CI=1 npm test`). A failure prints its seed either way.
if [[ -n "${CI:-}" ]] && commit=$(git rev-parse --short=7 HEAD 2>/dev/null); then
  export DSO_FUZZ_SEED="${DSO_FUZZ_SEED:-$((16#$commit))}"
  export DSO_HARDENING_SOAK_SEED="${DSO_HARDENING_SOAK_SEED:-$((16#$commit))}"
  log "seeds from commit $commit: DSO_FUZZ_SEED=$DSO_FUZZ_SEED DSO_HARDENING_SOAK_SEED=$DSO_HARDENING_SOAK_SEED"
fi

# Runs `bun test ARGS...` on the private engine of profile $1, set up here and stopped afterwards
# unless DSO_TEST_KEEP_ENGINE=1. A subshell: the profiles' exports (DOCKER_HOST, PATH, ...) and
# traps stay apart.
run_profile() (
  local profile="$1"
  shift
  export DSO_TEST_PROFILE="$profile"
  # Set before the environment exists: a set-up that fails half-way still stops its engine.
  # shellcheck disable=SC2317 # run by the EXIT trap
  stop_engine_on_exit() {
    local status=$?
    if [[ "${DSO_TEST_KEEP_ENGINE:-0}" != 1 ]] && declare -F dso_test_env_down >/dev/null; then
      dso_test_env_down || log "warning: could not stop the $profile test engine"
    fi
    exit "$status"
  }
  trap stop_engine_on_exit EXIT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  log "$profile: setting up its engine"
  # shellcheck source=scripts/test-env.sh
  source scripts/test-env.sh
  log "$profile: bun test $*"
  node_modules/.bin/bun test "$@"
)

status=0
summary=()
for profile in "${profiles[@]}"; do
  args=("$@")
  if (($# == 0)) && [[ "$profile" == engine28 && "${profiles[0]}" == engine20 ]]; then
    args=("${matrix_paths[@]}")
  fi
  started=$SECONDS
  part_status=0
  run_profile "$profile" "${timeout_args[@]}" "${args[@]}" || part_status=$?
  summary+=("$profile: $( ((part_status == 0)) && echo passed || echo "FAILED (exit $part_status)") in $((SECONDS - started)) s")
  ((status != 0)) || status=$part_status
done
for line in "${summary[@]}"; do log "$line"; done
exit "$status"
