#!/usr/bin/env bash
# The main job of DSO: an encrypted local vault, a small Compose stack that takes one secret as
# an environment variable and one as a file in RAM, and the proof of where each one is (and is
# not). It runs on the private Docker engine of scripts/test-env.sh, so it needs root on
# Debian/Ubuntu for the first run and leaves the machine's own Docker alone. The first run on a
# fresh machine takes about 3 minutes (measured: npm ci 45 s, apt 85 s, the rest 30 s; apt's
# output goes to a log while progress is shown); later runs take about 15 s.
#
# It never prints a secret value: the app shows each one masked, with its length and SHA-256,
# so the output can be kept (`./scripts/demo.sh | tee demo.log`) and the demo's own scan of
# /tmp for the file secret stays meaningful.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

if [[ ! -d node_modules ]]; then say "Installing dependencies (npm ci)"; npm ci --no-audit --no-fund; fi
if [[ ! -x dist/dso-linux-x64 && ! -x dist/dso-linux-arm64 ]]; then say "Building the dso binary"; npm run build; fi
arch=$(uname -m); case "$arch" in x86_64|amd64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; esac
DSO="$ROOT/dist/dso-linux-$arch"

say "Starting a private Docker engine with Compose (scripts/test-env.sh)"
echo "The first run installs packages (apt's output goes to ${DSO_TEST_ROOT:-/var/tmp/dso-test}/apt.log)"
echo "and downloads Compose v2: about 2 minutes, with progress below. Later runs reuse them."
# Only what the demo needs: no AWS emulator, no test images beyond busybox.
# shellcheck source=scripts/test-env.sh
DSO_TEST_ENV_MINIMAL=1 source scripts/test-env.sh
DEMO=$(mktemp -d /var/tmp/dso-demo.XXXXXX)
# The demo's own disk scan (step 6) needs the file secret as a grep pattern: in RAM, never in an argv.
PATTERN=$(mktemp /dev/shm/dso-demo-pattern.XXXXXX)
# However the demo ends (a failed check included), its stack, secret volumes and files go, and
# the private engine stops, unless DSO_DEMO_KEEP=1 asks to keep them for a look around.
cleanup() {
  rm -f "$PATTERN"
  [[ "${DSO_DEMO_KEEP:-0}" == 1 ]] && return
  if [[ -f "$DEMO/compose.yaml" ]]; then
    (cd "$DEMO" && "$DSO" down -t 1 >/dev/null 2>&1) || true
  fi
  rm -rf "$DEMO"
  dso_test_env_down
}
trap cleanup EXIT

export DSO_HOME="$DEMO/.dso"
cd "$DEMO"
# A demo passphrase from a file; for real use, let `dso init` ask for it on the terminal.
printf 'demo passphrase, change me\n' > "$DEMO/passphrase"
chmod 600 "$DEMO/passphrase"
P=(--passphrase-file "$DEMO/passphrase")

say "1. Create the encrypted vault"
run "$DSO" init "${P[@]}"

say "2. Store two secrets (values come from stdin, never from the command line)"
DB_PASSWORD="db-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
API_KEY="api-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$DB_PASSWORD" | run "$DSO" secret set demo/db_password "${P[@]}"
printf '%s' "$API_KEY" | run "$DSO" secret set demo/api_key "${P[@]}"
run "$DSO" secret list "${P[@]}"

say "3. A compose file that references them"
cat > compose.yaml <<'YAML'
services:
  app:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      DB_PASSWORD_FILE: dsofile://demo/db_password   # a file in RAM; the variable holds its path
      API_KEY: dso://demo/api_key                    # the value itself (visible to docker inspect)
YAML
cat compose.yaml

say "4. docker dso up -d"
run "$DSO" up -d "${P[@]}"

say "5. What the app sees (values masked by the app itself: label, length, SHA-256)"
sha256() { printf '%s' "$1" | sha256sum | cut -d ' ' -f 1; }
# shellcheck disable=SC2016 # expanded by the container's shell
seen=$(run docker compose exec -T app sh -c '
  mask() { printf "%s-**** (%s bytes, sha256 %s)" "${1%%-*}" "${#1}" "$(printf %s "$1" | sha256sum | cut -d " " -f 1)"; }
  echo "DB_PASSWORD_FILE=$DB_PASSWORD_FILE"
  echo "file content: $(mask "$(cat "$DB_PASSWORD_FILE")")"
  echo "API_KEY=$(mask "$API_KEY")"
  grep " /run/secrets " /proc/mounts')
printf '%s\n' "$seen"
for pair in "file content:$(sha256 "$DB_PASSWORD")" "API_KEY=:$(sha256 "$API_KEY")"; do
  [[ $seen == *"sha256 ${pair##*:}"* ]] || { echo "FAIL: the app's ${pair%%:*} is not the value stored in step 2"; exit 1; }
done
echo "both SHA-256 are those of the values stored in step 2"

say "6. Where the secrets are NOT"
id=$(docker compose ps -q app)
# Matched in the shell, not with `docker inspect | grep -q`: under pipefail grep -q's early exit
# can kill docker inspect with SIGPIPE and turn a match into a failure.
inspect=$(docker inspect "$id")
if [[ $inspect == *"$DB_PASSWORD"* ]]; then echo "FAIL: the file secret is in docker inspect"; exit 1; fi
echo "docker inspect: no trace of the file secret (demo/db_password)"
if [[ $inspect != *"$API_KEY"* ]]; then echo "FAIL: the dso:// value should be in docker inspect"; exit 1; fi
echo "docker inspect: the dso:// value IS there, as DSO warned (use dsofile:// to avoid it)"
unset inspect
# Nothing above printed a value, so the output may be saved under /tmp: this scan covers it.
printf '%s\n' "$DB_PASSWORD" >"$PATTERN"
hits=$(find "$DSO_TEST_DATA_ROOT" "$DEMO" /tmp -xdev -type f -print0 2>/dev/null | xargs -0 grep -lF -f "$PATTERN" 2>/dev/null | grep -v '/vault.enc$' || true)
if [[ -n "$hits" ]]; then echo "FAIL: the file secret is on disk: $hits"; exit 1; fi
echo "disk (engine data root, $DEMO, /tmp): no trace of the file secret; it lives in a tmpfs volume"

say "7. docker dso down: containers, secret volumes and holder are gone"
run "$DSO" down -t 1
left=$(docker volume ls -q --filter label=dso.role=secret-volume)
docker ps -aq --filter label=dso.role=holder | grep -q . && { echo "a holder container is left" >&2; exit 1; }
[[ -z "$left" ]] || { echo "secret volumes are left: $left" >&2; exit 1; }
echo "no secret volume and no holder left; the one DSO volume kept is dso-bin-*, which holds only"
echo "the public program that makes containers wait for their secrets after a reboot"

cd "$ROOT"
rm -rf "$DEMO"
say "Done. Install DSO for yourself with: sh scripts/install.sh"
