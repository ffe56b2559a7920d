#!/usr/bin/env bash
# The main job of DSO in two minutes, on a fresh machine: an encrypted local vault, a small
# Compose stack that takes one secret as an environment variable and one as a file in RAM, and
# the proof of where each one is (and is not). It runs on the private Docker engine of
# scripts/test-env.sh, so it needs root on Debian/Ubuntu for the first run and leaves the
# machine's own Docker alone.
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
# shellcheck source=scripts/test-env.sh
source scripts/test-env.sh
DEMO=$(mktemp -d /var/tmp/dso-demo.XXXXXX)
# However the demo ends (a failed check included), its stack, secret volumes and files go, and
# the private engine stops, unless DSO_DEMO_KEEP=1 asks to keep them for a look around.
cleanup() {
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

say "5. What the app sees"
run docker compose exec -T app sh -c 'echo "DB_PASSWORD_FILE=$DB_PASSWORD_FILE"; echo "file content: $(cat "$DB_PASSWORD_FILE")"; echo "API_KEY=$API_KEY"; grep " /run/secrets " /proc/mounts'

say "6. Where the secrets are NOT"
id=$(docker compose ps -q app)
if docker inspect "$id" | grep -q "$DB_PASSWORD"; then echo "FAIL: the file secret is in docker inspect"; exit 1; fi
echo "docker inspect: no trace of the file secret (demo/db_password)"
if docker inspect "$id" | grep -q "$API_KEY"; then echo "docker inspect: the dso:// value IS there, as DSO warned (use dsofile:// to avoid it)"; fi
# The demo prints the values on purpose (step 5): send its output to a file under /tmp and this
# check finds that file.
hits=$(find "$DSO_TEST_DATA_ROOT" "$DEMO" /tmp -xdev -type f -print0 2>/dev/null | xargs -0 grep -l -- "$DB_PASSWORD" 2>/dev/null | grep -v '/vault.enc$' || true)
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
