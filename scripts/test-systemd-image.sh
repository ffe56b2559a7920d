#!/usr/bin/env bash
# Builds the image dso-test/systemd: Debian (this machine's release) with systemd as PID 1, for
# test/integration/systemd.test.ts, which installs the agent in it with `dso system setup`.
# Built without a registry: debootstrap from the Debian mirror the machine's apt sources name
# (found by scripts/test-env.sh, the same code as its trixie downloads), then `docker import`.
#
#   bash scripts/test-systemd-image.sh      build the image if it is missing or its recipe
#                                           changed; print its name on stdout
#
# Needs root, debootstrap (scripts/test-env.sh installs it) and DOCKER_HOST pointing at the
# private test engine. The root file system is cached as a tar under $DSO_TEST_CACHE (default
# /var/cache/dso-test), so a new engine imports it in seconds; debootstrap runs once (about
# 40 s, 240 MB). DSO_TEST_DEBIAN_MIRROR overrides the mirror, as for scripts/test-env.sh.
#
# Run the image with: --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run
# --tmpfs /run/lock --cap-add ALL --cap-drop SYS_RESOURCE (engine 20.10: --privileged fails on
# these machines) or --cap-add ALL (engine 28, which refuses to drop what the host lacks).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly image="dso-test/systemd:latest"
readonly cache="${DSO_TEST_CACHE:-/var/cache/dso-test}"
# systemd-sysv gives /sbin/init; dbus lets systemctl and journalctl talk to systemd as usual;
# procps has /bin/kill (the unit's ExecReload), as on any standard Debian host.
readonly include="systemd,systemd-sysv,dbus,procps"
# Units that fail or make no sense in a container, and timers that would run apt.
readonly unwanted=(
  etc/systemd/system/getty.target.wants
  etc/systemd/system/timers.target.wants
  etc/systemd/system/multi-user.target.wants/e2scrub_reap.service
  etc/systemd/system/sysinit.target.wants/systemd-pstore.service
)

log() { printf '[systemd-image] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

[[ -n "${DOCKER_HOST:-}" ]] || die "DOCKER_HOST is not set: eval \"\$(bash $here/test-env.sh env)\" first"
# shellcheck source=/dev/null
suite="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
[[ -n "$suite" ]] || suite=bookworm
# A new recipe (suite, packages, the trimming above) means a new rootfs and image.
recipe="systemd-v1-$(printf '%s\n' "$suite" "$include" "${unwanted[@]}" | sha256sum | cut -c 1-16)"
readonly recipe_label="dso.test.recipe"

current() {
  [[ "$(docker image inspect --format "{{index .Config.Labels \"$recipe_label\"}}" "$image" 2>/dev/null)" == "$recipe" ]]
}

if current; then
  printf '%s\n' "$image"
  exit 0
fi

((EUID == 0)) || die "building $image needs root (debootstrap)"
mkdir -p "$cache/systemd-rootfs"
exec 7>"$cache/systemd-rootfs/.lock"
flock -w 900 7 || die "timed out waiting for $cache/systemd-rootfs/.lock"
if current; then
  printf '%s\n' "$image"
  exit 0
fi

tarball="$cache/systemd-rootfs/$recipe.tar"
if [[ ! -s "$tarball" ]]; then
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap; scripts/test-env.sh does it)"
  mirror="${DSO_TEST_DEBIAN_MIRROR:-}"
  [[ -n "$mirror" ]] || mirror="$(bash "$here/test-env.sh" mirror)"
  [[ -n "$mirror" ]] || die "no Debian mirror found in the apt sources; set DSO_TEST_DEBIAN_MIRROR"
  work="$cache/systemd-rootfs/$recipe.work"
  trap 'rm -rf "$work" "$tarball.partial"' EXIT
  rm -rf "$work"
  mkdir -p "$work"
  log "debootstrap $suite with $include from the machine's mirror (about 40 s)"
  started=$SECONDS
  debootstrap --variant=minbase --include="$include" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed"
  }
  log "debootstrap took $((SECONDS - started)) s"
  for path in "${unwanted[@]}"; do rm -rf "${work:?}/rootfs/$path"; done
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  # Empty: systemd makes a machine id at each boot, so containers do not share one.
  : >"$work/rootfs/etc/machine-id"
  tar --numeric-owner -C "$work/rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  rm -rf "$work"
  trap - EXIT
  # Root file systems of older recipes are of no more use.
  find "$cache/systemd-rootfs" -maxdepth 1 -name 'systemd-v*.tar' ! -name "$recipe.tar" -delete
fi

log "importing $image"
old="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
docker import \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=docker' \
  --change "LABEL $recipe_label=$recipe" \
  - "$image" <"$tarball" >/dev/null
# The previous recipe's image, now untagged (kept by docker if a container still uses it).
if [[ -n "$old" ]]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
printf '%s\n' "$image"
