#!/usr/bin/env bash
# The test environment: a private Docker engine, Compose v1 and v2, and registry-free test images
# (busybox, a shell-less one, and Debian booting systemd, built by scripts/test-systemd-image.sh),
# so the integration tests run against a real engine on a bare Debian bookworm machine.
#
#   source scripts/test-env.sh            set up (idempotent) and export the variables below;
#                                         defines dso_test_env_up and dso_test_env_down
#   bash scripts/test-env.sh up           set up and print `export ...` lines on stdout, so
#                                         `eval "$(bash scripts/test-env.sh up)"` works too
#   bash scripts/test-env.sh down         stop the private engine, unmount its leftovers
#   bash scripts/test-env.sh restart      stop the private engine as `down` does (its containers
#                                         are killed) and start it again as `up` does; for the
#                                         tests of what DSO does when the engine goes away
#   bash scripts/test-env.sh purge        down, then delete $DSO_TEST_ROOT (keeps the cache)
#   bash scripts/test-env.sh env          print the exports without setting anything up
#   bash scripts/test-env.sh mirror       print the Debian mirror URI the downloads use
#
# Profiles: DSO_TEST_PROFILE says which engine and Compose the environment runs.
#   engine20  (the default) Debian bookworm's docker.io, engine 20.10 (API 1.41), with Compose
#             v2 2.26 from trixie's docker-compose; the docker CLI is the one on PATH.
#   engine28  Debian sid's docker.io 28.5 (dockerd, docker-proxy, docker-init) with sid's
#             docker-cli 28.5 and Compose 2.40 (sid's docker-compose), unpacked into the cache
#             and run with bookworm's containerd and runc (installed with docker.io 20.10). Its
#             docker CLI comes first on the exported PATH.
# Each profile has its own settings (below), so both engines can run at once. engine28 exports
# DSO_TEST_PROFILE: a shell that sourced it stays on it (open another shell for engine20).
#
# Exports: DOCKER_HOST, DOCKER_CONFIG (holds cli-plugins/docker-compose, Compose v2),
# DSO_TEST_ROOT (the profile's root), DSO_TEST_DATA_ROOT (the engine's data
# root, which tests scan for leaked secrets), DSO_TEST_COMPOSE_V1 (the Compose v1 binary),
# DSO_TEST_IMAGE_BUSYBOX, DSO_TEST_IMAGE_NOSHELL, DSO_TEST_MOTO_SERVER (the command that starts
# moto_server, the AWS emulator the aws provider's tests run against), the profile's settings
# below, and for engine28 DSO_TEST_PROFILE and PATH.
#
# The private DOCKER_CONFIG also searches the caller's own cli-plugins directory
# (${DOCKER_CONFIG:-~/.docker}/cli-plugins, through cliPluginsExtraDirs), so a `docker dso`
# installed by scripts/install.sh works with the test engine; and scripts/install.sh, run with
# this DOCKER_CONFIG, installs into that directory (named in DOCKER_CONFIG/dso-test-env), not
# into the private one, which goes with the engine's root.
#
# Settings (environment):
#   DSO_TEST_ROOT       engine20: state, socket, log, DOCKER_CONFIG default /var/tmp/dso-test
#   DSO_TEST_CACHE      downloads kept between runs (Compose v2, moto, engine 28), shared by
#                       both profiles                              default /var/cache/dso-test
#   DSO_TEST_BRIDGE, DSO_TEST_BIP, DSO_TEST_ADDR_POOL, DSO_TEST_FORWARD_NET
#                       engine20: see "Networking" below; give each engine its own values (and
#                       its own DSO_TEST_ROOT) to run two private engines at once
#   DSO_TEST28_ROOT, DSO_TEST28_BRIDGE, DSO_TEST28_BIP, DSO_TEST28_ADDR_POOL,
#   DSO_TEST28_FORWARD_NET
#                       the same for engine28; defaults /var/tmp/dso-test28, dsotest28,
#                       10.214.0.1/24, 10.215.0.0/16, 10.214.0.0/15
#   DSO_TEST28_SUITE    the Debian suite engine28's packages come from (default sid); the
#                       set-up stops with an error if it no longer holds engine 28 and Compose 2
#   DSO_TEST_DEBIAN_MIRROR  Debian mirror URI for the trixie and sid downloads when the
#                       machine's apt sources do not name one (the default is derived from them)
#   DSO_TEST_ENV_MINIMAL=1  only what scripts/demo.sh needs: fewer packages, the engine, Compose
#                       and the busybox image (no moto, no shell-less or systemd image); a later
#                       full `up` adds the rest
#
# Networking. Another dockerd may already run on this machine (a developer's engine, for
# instance at /var/tmp/dsodev) and own `docker0`, the 172.17-31.x pools and the DOCKER iptables
# chains. A second engine with default settings would put its containers on the same docker0
# with its own IP allocation (duplicate addresses), and on start-up it flushes the shared
# DOCKER chains, silently breaking the other engine's port forwarding (and the other engine
# does the same to us whenever it restarts). So the private engine gets
#   - its own default bridge, $DSO_TEST_BRIDGE (dsotest0, 10.212.0.1/24), created here because
#     dockerd only creates a bridge named docker0 itself;
#   - its own pool for user networks (Compose networks), $DSO_TEST_ADDR_POOL (10.213.0.0/16);
#   - --iptables=false, so it never touches the shared chains. One rule of ours accepts
#     forwarded traffic inside 10.212.0.0/15: with br_netfilter loaded and a FORWARD policy of
#     DROP (what any dockerd with iptables leaves behind) even traffic between two containers on
#     one bridge would otherwise be dropped. Consequences for tests: containers reach each other
#     and the host, published ports work (through docker-proxy), there is no NAT to the outside
#     (nothing outside is reachable here anyway) and no isolation between two of our networks.

# ---- Sourced: run the real work in a child bash (so `set -e` holds there whatever the caller's
# options or `||` context), then import its exports into the caller's shell.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  _dso_te_self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
  dso_test_env_up() {
    local exports
    exports="$(bash "$_dso_te_self" up)" || {
      printf '[test-env] set-up failed (see above)\n' >&2
      return 1
    }
    eval "$exports"
  }
  dso_test_env_down() {
    bash "$_dso_te_self" down
  }
  dso_test_env_up
  return
fi

set -euo pipefail

DSO_TEST_PROFILE="${DSO_TEST_PROFILE:-engine20}"
DSO_TEST_CACHE="${DSO_TEST_CACHE:-/var/cache/dso-test}"
case "$DSO_TEST_PROFILE" in
  engine20)
    DSO_TEST_ROOT="${DSO_TEST_ROOT:-/var/tmp/dso-test}"
    DSO_TEST_BRIDGE="${DSO_TEST_BRIDGE:-dsotest0}"
    DSO_TEST_BIP="${DSO_TEST_BIP:-10.212.0.1/24}"
    DSO_TEST_ADDR_POOL="${DSO_TEST_ADDR_POOL:-10.213.0.0/16}"
    # Covers both of the defaults above; only used for the one FORWARD accept rule.
    DSO_TEST_FORWARD_NET="${DSO_TEST_FORWARD_NET:-10.212.0.0/15}"
    readonly settings=(DSO_TEST_BRIDGE DSO_TEST_BIP DSO_TEST_ADDR_POOL DSO_TEST_FORWARD_NET)
    ;;
  engine28)
    DSO_TEST28_ROOT="${DSO_TEST28_ROOT:-/var/tmp/dso-test28}"
    DSO_TEST28_BRIDGE="${DSO_TEST28_BRIDGE:-dsotest28}"
    DSO_TEST28_BIP="${DSO_TEST28_BIP:-10.214.0.1/24}"
    DSO_TEST28_ADDR_POOL="${DSO_TEST28_ADDR_POOL:-10.215.0.0/16}"
    DSO_TEST28_FORWARD_NET="${DSO_TEST28_FORWARD_NET:-10.214.0.0/15}"
    DSO_TEST28_SUITE="${DSO_TEST28_SUITE:-sid}"
    readonly settings=(DSO_TEST28_ROOT DSO_TEST28_BRIDGE DSO_TEST28_BIP DSO_TEST28_ADDR_POOL
      DSO_TEST28_FORWARD_NET DSO_TEST28_SUITE)
    # The rest of this script works on the DSO_TEST_* names; DSO_TEST_ROOT is exported as the
    # profile's root, which is what tests read.
    DSO_TEST_ROOT="$DSO_TEST28_ROOT"
    DSO_TEST_BRIDGE="$DSO_TEST28_BRIDGE"
    DSO_TEST_BIP="$DSO_TEST28_BIP"
    DSO_TEST_ADDR_POOL="$DSO_TEST28_ADDR_POOL"
    DSO_TEST_FORWARD_NET="$DSO_TEST28_FORWARD_NET"
    ;;
  *)
    printf '[test-env] ERROR: DSO_TEST_PROFILE=%s: use engine20 or engine28\n' "$DSO_TEST_PROFILE" >&2
    exit 2
    ;;
esac

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
readonly pidfile="$DSO_TEST_ROOT/docker.pid"
readonly socket="$DSO_TEST_ROOT/docker.sock"
readonly busybox_image="dso-test/busybox:latest"
readonly noshell_image="dso-test/noshell:latest"
readonly compose_v1="/usr/bin/docker-compose"
# Where Debian's docker-compose package (trixie, Compose v2) puts the CLI plugin.
readonly compose_v2_rel="usr/libexec/docker/cli-plugins/docker-compose"

# The caller's own Docker config, before ours replaces it: where a user's `docker dso` is.
readonly caller_docker_config="${DOCKER_CONFIG:-}"
export DOCKER_HOST="unix://$socket"
export DOCKER_CONFIG="$DSO_TEST_ROOT/docker-config"
# engine28: sid's docker CLI, linked there by setup_docker_config.
readonly client_bin="$DSO_TEST_ROOT/bin"
if [[ "$DSO_TEST_PROFILE" == engine28 && ":$PATH:" != *":$client_bin:"* ]]; then
  export PATH="$client_bin:$PATH"
fi
# Any of these in the caller's environment would send the CLI elsewhere or over TLS.
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

log() { printf '[test-env] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

print_exports() {
  local name
  printf 'unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH\n'
  for name in DOCKER_HOST DOCKER_CONFIG DSO_TEST_ROOT DSO_TEST_DATA_ROOT DSO_TEST_COMPOSE_V1 \
    DSO_TEST_IMAGE_BUSYBOX DSO_TEST_IMAGE_NOSHELL DSO_TEST_MOTO_SERVER "${settings[@]}"; do
    printf 'export %s=%q\n' "$name" "${!name}"
  done
  # Not for the default: `npm test` in a shell that sourced engine20 still runs both profiles.
  if [[ "$DSO_TEST_PROFILE" == engine28 ]]; then
    printf 'export DSO_TEST_PROFILE=%q PATH=%q\n' "$DSO_TEST_PROFILE" "$PATH"
  fi
}

# The values are read through ${!name} in print_exports.
# shellcheck disable=SC2034
set_exports() {
  DSO_TEST_DATA_ROOT="$DSO_TEST_ROOT/data"
  DSO_TEST_COMPOSE_V1="$compose_v1"
  DSO_TEST_IMAGE_BUSYBOX="$busybox_image"
  DSO_TEST_IMAGE_NOSHELL="$noshell_image"
  DSO_TEST_MOTO_SERVER="$moto_server"
}

# ---------------------------------------------------------------------------------------------
# Packages

# Temporary files and the temporary policy-rc.d, removed however this script exits.
temp_paths=()
on_exit() {
  if ((${#temp_paths[@]} > 0)); then
    rm -rf "${temp_paths[@]}"
  fi
}
trap on_exit EXIT

make_temp_dir() {
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/dso-test-env.XXXXXX")"
  temp_paths+=("$dir")
  printf '%s' "$dir"
}

# The engine's and the images' packages; moto's are listed with moto below. strace holds the
# agent inside one system call for test/hardening/permissions.test.ts; bash-completion, zsh and
# fish run the completion scripts in test/integration/completion.test.ts.
readonly engine_packages=(docker.io docker-compose busybox-static tmux gcc libc6-dev iptables iproute2
  systemd debootstrap strace bash-completion zsh fish)
# DSO_TEST_ENV_MINIMAL: the engine, Compose v1 and v2, and the busybox image.
readonly minimal_packages=(docker.io docker-compose busybox-static iptables iproute2)

# Runs "$@" (a long step: apt, a download) with its output in the file $2, not on the terminal,
# saying every 15 s that it is still at it, and showing the file's end if the step fails.
quietly() {
  local what="$1" output="$2"
  shift 2
  local started=$SECONDS next=15 status=0
  "$@" >>"$output" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS - started >= next)); then
      log "... still $what ($((SECONDS - started)) s)"
      next=$((next + 15))
    fi
  done
  wait "$pid" || status=$?
  if ((status != 0)); then
    log "$what failed; the end of $output:"
    tail -n 20 "$output" >&2 || true
    return "$status"
  fi
}

# Installs whichever of the packages named as arguments are missing, with one apt run.
install_packages() {
  local missing=() pkg status
  for pkg in "$@"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if ((EUID != 0)); then
    die "missing packages: ${missing[*]}; run as root (or: apt-get install ${missing[*]})"
  fi
  mkdir -p "$DSO_TEST_ROOT"
  local output="$DSO_TEST_ROOT/apt.log"
  log "installing ${#missing[@]} packages with apt (${missing[*]}); their output goes to $output"
  # Without a policy-rc.d, on a machine with a working init, docker.io's postinst would start
  # the system dockerd on /var/run/docker.sock, which these tests must never touch.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from DSO scripts/test-env.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    temp_paths+=(/usr/sbin/policy-rc.d)
  fi
  # Other people may run apt on this machine at the same time: wait for their lock.
  local apt_opts=(-o DPkg::Lock::Timeout=600 -o APT::Get::Assume-Yes=true)
  local started=$SECONDS
  quietly "updating the package lists" "$output" \
    env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" -qq update
  quietly "installing packages" "$output" \
    env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" -qq install --no-install-recommends "${missing[@]}"
  log "installed ${#missing[@]} packages in $((SECONDS - started)) s"
}

# ---------------------------------------------------------------------------------------------
# Compose v2, from Debian trixie, without touching the machine's apt configuration

# Prints the URI of the machine's main Debian suite (the one for this release's codename, not
# -updates or -security), from one-line .list files and deb822 .sources files.
debian_mirror() {
  local codename
  # shellcheck source=/dev/null
  codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
  [[ -n "$codename" ]] || codename=bookworm
  local lists=() sources=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] && lists+=("$f")
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && sources+=("$f")
  done
  local uri=""
  if ((${#sources[@]} > 0)); then
    # deb822: paragraphs separated by blank lines; continuation lines start with blanks.
    uri="$(awk -v want="$codename" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; enabled = "yes"; key = ""
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^[ \t]*#/) continue
          if (line ~ /^[ \t]/) { val = line }
          else {
            p = index(line, ":"); if (p == 0) continue
            key = tolower(substr(line, 1, p - 1)); val = substr(line, p + 1)
          }
          if (key == "types") types = types " " val
          else if (key == "uris") uris = uris " " val
          else if (key == "suites") suites = suites " " val
          else if (key == "enabled") { gsub(/[ \t]/, "", val); enabled = tolower(val) }
        }
        if (enabled == "no") next
        isdeb = 0; n = split(types, t, /[ \t]+/)
        for (j = 1; j <= n; j++) if (t[j] == "deb") isdeb = 1
        match_suite = 0; n = split(suites, s, /[ \t]+/)
        for (j = 1; j <= n; j++) if (s[j] == want) match_suite = 1
        if (!isdeb || !match_suite) next
        n = split(uris, u, /[ \t]+/)
        for (j = 1; j <= n; j++) if (u[j] != "" && u[j] !~ /^cdrom:/) { print u[j]; exit }
      }' "${sources[@]}")"
  fi
  if [[ -z "$uri" && ${#lists[@]} -gt 0 ]]; then
    uri="$(awk -v want="$codename" '
      /^[ \t]*#/ { next }
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == want && $i !~ /^cdrom:/) { print $i; exit }
      }' "${lists[@]}")"
  fi
  printf '%s' "${uri%/}"
}

# Engines with different roots share the cache: one download at a time. Callers look again
# for what they want after taking the lock.
lock_cache() {
  if ! mkdir -p "$DSO_TEST_CACHE" 2>/dev/null || [[ ! -w "$DSO_TEST_CACHE" ]]; then
    die "cannot write the cache $DSO_TEST_CACHE: run as root or set DSO_TEST_CACHE"
  fi
  exec 8>"$DSO_TEST_CACHE/.lock"
  flock -w 600 8 || die "timed out waiting for $DSO_TEST_CACHE/.lock"
}

unlock_cache() {
  exec 8>&-
}

# Downloads the packages named after $1 and $2 from the suite $1 of the machine's Debian mirror
# into the new directory $2, the newest version of each.
download_debs() {
  local suite="$1" work="$2"
  shift 2
  local mirror="${DSO_TEST_DEBIAN_MIRROR:-}"
  [[ -n "$mirror" ]] || mirror="$(debian_mirror)"
  [[ -n "$mirror" ]] ||
    die "no Debian mirror found in /etc/apt/sources.list{,.d/}; set DSO_TEST_DEBIAN_MIRROR"
  mkdir -p "$work/lists/partial" "$work/archives/partial"
  local signed_by=""
  if [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
    signed_by="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
  fi
  printf 'deb %s%s %s main\n' "$signed_by" "$mirror" "$suite" >"$work/sources.list"
  # A private source list, lists dir and archive dir; no package cache file (the default one
  # is the system's, /var/cache/apt/pkgcache.bin). The machine's apt.conf.d stays in force
  # (proxies). Downloads run as root because _apt cannot write into a root-only cache.
  local apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache::Archives=$work/archives"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "Acquire::Languages=none"
    -o "APT::Sandbox::User=root"
  )
  # --error-on=any: by default a failed fetch is only a warning, and the download below would
  # then quietly pick the installed package (for docker-compose, Compose v1).
  quietly "reading $suite's package lists" "$work/apt.log" apt-get "${apt_opts[@]}" -qq --error-on=any update ||
    die "apt-get update of $suite from $mirror failed (set DSO_TEST_DEBIAN_MIRROR to another mirror)"
  (cd "$work" && quietly "downloading $*" "$work/apt.log" apt-get "${apt_opts[@]}" -qq download "$@") ||
    die "could not download $* from $suite"
}

# Prints the path of the .deb of package $1 in directory $2.
deb_in() {
  local debs=("$2/$1"_*.deb)
  [[ -f "${debs[0]}" ]] || die "apt-get download left no $1 .deb in $2"
  printf '%s' "${debs[0]}"
}

# Downloads Debian trixie's package $1 into the new directory $2 and prints the .deb's path.
download_trixie_deb() {
  download_debs trixie "$2" "$1"
  deb_in "$1" "$2"
}

# Makes sure the cache holds a working Compose v2 plugin at $compose_v2_cached, downloading
# and unpacking Debian trixie's docker-compose package if needed.
compose_v2_cached="$DSO_TEST_CACHE/compose-v2/$compose_v2_rel"
cache_compose_v2() {
  if [[ -x "$compose_v2_cached" ]] && "$compose_v2_cached" version >/dev/null 2>&1; then
    return 0
  fi
  lock_cache
  if [[ -x "$compose_v2_cached" ]] && "$compose_v2_cached" version >/dev/null 2>&1; then
    unlock_cache
    return 0
  fi
  log "downloading Compose v2 (Debian trixie docker-compose) from the machine's mirror"
  local work="$DSO_TEST_CACHE/compose-v2.work"
  rm -rf "$work"
  temp_paths+=("$work")
  local deb
  deb="$(download_trixie_deb docker-compose "$work")"
  mkdir -p "$work/unpacked"
  dpkg-deb -x "$deb" "$work/unpacked"
  [[ -x "$work/unpacked/$compose_v2_rel" ]] ||
    die "$(basename "$deb") has no $compose_v2_rel: not the Compose v2 package"
  "$work/unpacked/$compose_v2_rel" version >/dev/null ||
    die "the Compose v2 plugin from $(basename "$deb") does not run on this machine"
  rm -rf "$DSO_TEST_CACHE/compose-v2"
  mv "$work/unpacked" "$DSO_TEST_CACHE/compose-v2"
  basename "$deb" >"$DSO_TEST_CACHE/compose-v2/SOURCE-PACKAGE"
  unlock_cache
}

# ---------------------------------------------------------------------------------------------
# Engine 28.5 and Compose 2.40 (the engine28 profile), from Debian sid, the same way

# docker.io has dockerd, docker-proxy and docker-init (a link to tini-static's binary);
# docker-cli the CLI; docker-compose the Compose plugin. They are unpacked side by side into
# $engine28_dir; containerd and runc are bookworm's, installed with docker.io 20.10.
readonly engine28_packages=(docker.io docker-cli tini-static docker-compose)
readonly engine28_dir="$DSO_TEST_CACHE/engine28"

# Prints what is wrong with the engine28 tree at $1 (missing, does not run, not version 28 of
# the engine and CLI and 2 of Compose), or nothing when it is fine.
engine28_problem() {
  local tree="$1" file version
  for file in usr/sbin/dockerd usr/sbin/docker-proxy usr/bin/docker-init usr/bin/docker "$compose_v2_rel"; do
    [[ -x "$tree/$file" ]] || {
      printf '%s is missing' "$file"
      return 0
    }
  done
  version="$("$tree/usr/sbin/dockerd" --version 2>&1)" || {
    printf 'dockerd does not run here: %s' "$version"
    return 0
  }
  if [[ "$version" != "Docker version 28."* ]]; then
    printf 'dockerd is not 28.x: %s' "$version"
    return 0
  fi
  version="$("$tree/usr/bin/docker" --version 2>&1)" || version="does not run: $version"
  if [[ "$version" != "Docker version 28."* ]]; then
    printf 'the docker CLI is not 28.x: %s' "$version"
    return 0
  fi
  version="$("$tree/$compose_v2_rel" version 2>&1)" || version="does not run: $version"
  [[ "$version" =~ version\ v?2\. ]] || printf 'Compose is not 2.x: %s' "$version"
  return 0
}

# Makes sure the cache holds engine 28 and Compose 2 at $engine28_dir, downloading and unpacking
# the packages of $DSO_TEST28_SUITE if needed.
cache_engine28() {
  [[ -n "$(engine28_problem "$engine28_dir")" ]] || return 0
  lock_cache
  if [[ -z "$(engine28_problem "$engine28_dir")" ]]; then
    unlock_cache
    return 0
  fi
  log "downloading engine 28 and Compose 2 (Debian $DSO_TEST28_SUITE: ${engine28_packages[*]}) from the machine's mirror"
  local work="$DSO_TEST_CACHE/engine28.work"
  rm -rf "$work"
  temp_paths+=("$work")
  download_debs "$DSO_TEST28_SUITE" "$work" "${engine28_packages[@]}"
  mkdir -p "$work/unpacked"
  local package
  for package in "${engine28_packages[@]}"; do
    dpkg-deb -x "$(deb_in "$package" "$work")" "$work/unpacked"
    basename "$(deb_in "$package" "$work")" >>"$work/unpacked/SOURCE-PACKAGES"
  done
  local problem
  problem="$(engine28_problem "$work/unpacked")"
  [[ -z "$problem" ]] ||
    die "the engine28 profile needs engine 28 and Compose 2 from Debian $DSO_TEST28_SUITE, but $problem (set DSO_TEST28_SUITE to a suite that has them)"
  rm -rf "$engine28_dir"
  mv "$work/unpacked" "$engine28_dir"
  unlock_cache
}

# The profile's Compose v2 plugin (and for engine28 its engine and CLI) in the cache, linked into
# the private DOCKER_CONFIG (and $client_bin).
setup_docker_config() {
  local compose
  case "$DSO_TEST_PROFILE" in
    engine20)
      cache_compose_v2
      compose="$compose_v2_cached"
      ;;
    engine28)
      cache_engine28
      compose="$engine28_dir/$compose_v2_rel"
      mkdir -p "$client_bin"
      ln -sfn "$engine28_dir/usr/bin/docker" "$client_bin/docker"
      hash -r
      ;;
  esac
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  ln -sfn "$compose" "$DOCKER_CONFIG/cli-plugins/docker-compose"
  setup_user_plugins
}

# The caller's own cli-plugins directory, where scripts/install.sh puts docker-dso: the one a
# test DOCKER_CONFIG names in its dso-test-env file (the caller sourced this script before),
# else the caller's DOCKER_CONFIG's, else ~/.docker's.
user_plugin_dir() {
  local dir=""
  if [[ -n "$caller_docker_config" && -f "$caller_docker_config/dso-test-env" ]]; then
    dir="$(head -n 1 "$caller_docker_config/dso-test-env")"
  elif [[ -n "$caller_docker_config" ]]; then
    dir="$caller_docker_config/cli-plugins"
  fi
  if [[ "$dir" != /* || "$dir" == "$DOCKER_CONFIG/cli-plugins" ]]; then
    dir="${HOME:-/root}/.docker/cli-plugins"
  fi
  printf '%s' "$dir"
}

# Our config.json searches the user's plugins after ours (the docker CLI looks in
# DOCKER_CONFIG/cli-plugins first, then in cliPluginsExtraDirs), so `docker dso` works with the
# test engine and our Compose wins over any the user has. dso-test-env marks this config as ours
# and names that directory for scripts/install.sh.
setup_user_plugins() {
  local dir json
  dir="$(user_plugin_dir)"
  # JSON string escaping for a path: backslashes and double quotes.
  json="${dir//\\/\\\\}"
  json="${json//\"/\\\"}"
  printf '{\n  "cliPluginsExtraDirs": ["%s"]\n}\n' "$json" >"$DOCKER_CONFIG/config.json"
  printf '%s\n' "$dir" >"$DOCKER_CONFIG/dso-test-env"
}

# ---------------------------------------------------------------------------------------------
# moto_server, the AWS emulator (Secrets Manager, IAM, STS) for the aws provider's tests: moto
# 5.1 from Debian trixie's python3-moto, unpacked into the cache, on bookworm's python3 and
# libraries (bookworm's own python3-moto is 4.1).

# python3-moto's Depends, found in bookworm, plus python3-flask-cors: moto's server imports
# flask_cors (pip's moto[server]) though the package does not depend on it. Left out:
# python3-antlr4, imported only by the Step Functions parser, which was generated by ANTLR 4.13
# and so needs a newer runtime than bookworm's 4.9 anyway.
readonly moto_packages=(python3 python3-boto3 python3-botocore python3-cryptography
  python3-dateutil python3-flask python3-flask-cors python3-jinja2 python3-requests
  python3-responses python3-werkzeug python3-xmltodict)
readonly moto_not_needed=(python3-antlr4)
readonly moto_dir="$DSO_TEST_CACHE/moto"
# What tests run (DSO_TEST_MOTO_SERVER): moto_server's own arguments (-H, -p, ...) pass through.
readonly moto_server="$moto_dir/bin/moto_server"

# Whether the unpacked moto at $1 loads everything the tests use, on the system's python3 (not
# a pyenv or venv python3 that PATH may find first).
moto_loads() {
  [[ -x "$1/bin/moto_server" ]] &&
    PYTHONPATH="$1/usr/lib/python3/dist-packages" /usr/bin/python3 -s -c '
import moto.moto_server.werkzeug_app, moto.secretsmanager.responses, moto.iam.responses, moto.sts.responses
' >/dev/null 2>&1
}

# Writes $1/bin/moto_server, which runs the moto under $1 whatever PYTHON* variables and python3
# the caller has.
write_moto_wrapper() {
  mkdir -p "$1/bin"
  cat >"$1/bin/moto_server" <<'WRAPPER'
#!/bin/sh
# moto_server from Debian trixie's python3-moto on bookworm's python3 (DSO scripts/test-env.sh).
root="$(cd "$(dirname "$0")/.." && pwd)" || exit 1
unset PYTHONHOME PYTHONSTARTUP
PYTHONPATH="$root/usr/lib/python3/dist-packages"
export PYTHONPATH
exec /usr/bin/python3 -s "$root/usr/bin/moto_server" "$@"
WRAPPER
  chmod 755 "$1/bin/moto_server"
}

# Warns when python3-moto depends on a package this script does not install: a newer moto may
# need it (moto_loads then fails and says so).
check_moto_depends() {
  local deb="$1" dep name
  local -A known=()
  for name in "${moto_packages[@]}" "${moto_not_needed[@]}"; do known[$name]=1; done
  while IFS= read -r dep; do
    name="${dep%%[ (:]*}"
    [[ -z "$name" || -n "${known[$name]:-}" ]] ||
      log "warning: $(basename "$deb") depends on $name, which is not installed for it"
  done < <(dpkg-deb -f "$deb" Depends | tr ',|' '\n\n' | sed 's/^[[:space:]]*//')
}

# Makes sure $moto_server works, downloading and unpacking trixie's python3-moto if needed. The
# bookworm packages are installed by install_packages.
setup_moto() {
  if moto_loads "$moto_dir"; then
    return 0
  fi
  lock_cache
  if moto_loads "$moto_dir"; then
    unlock_cache
    return 0
  fi
  log "downloading moto (Debian trixie python3-moto) from the machine's mirror"
  local work="$DSO_TEST_CACHE/moto.work"
  rm -rf "$work"
  temp_paths+=("$work")
  local deb
  deb="$(download_trixie_deb python3-moto "$work")"
  check_moto_depends "$deb"
  mkdir -p "$work/unpacked"
  dpkg-deb -x "$deb" "$work/unpacked"
  [[ -f "$work/unpacked/usr/bin/moto_server" ]] ||
    die "$(basename "$deb") has no usr/bin/moto_server: not the moto package"
  write_moto_wrapper "$work/unpacked"
  moto_loads "$work/unpacked" ||
    die "moto from $(basename "$deb") does not load on this machine's /usr/bin/python3 (try: PYTHONPATH=$work/unpacked/usr/lib/python3/dist-packages /usr/bin/python3 -c 'import moto.moto_server.werkzeug_app')"
  rm -rf "$moto_dir"
  mv "$work/unpacked" "$moto_dir"
  basename "$deb" >"$moto_dir/SOURCE-PACKAGE"
  unlock_cache
}

# ---------------------------------------------------------------------------------------------
# The private engine

# Prints the pid from our pidfile if that process is alive and is a dockerd.
engine_pid() {
  local pid
  [[ -r "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == dockerd ]] || return 1
  # Pid reuse: make sure it is the dockerd started with our pidfile, not another engine.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pidfile" || return 1
  printf '%s' "$pid"
}

engine_answers() {
  timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

setup_bridge() {
  if ! ip link show "$DSO_TEST_BRIDGE" >/dev/null 2>&1; then
    ip link add name "$DSO_TEST_BRIDGE" type bridge
    ip addr add "$DSO_TEST_BIP" dev "$DSO_TEST_BRIDGE"
  fi
  ip link set "$DSO_TEST_BRIDGE" up
  ensure_forward_rule
}

# Also run for a reused engine: the rule is ours alone, nothing else puts it back.
ensure_forward_rule() {
  if command -v iptables >/dev/null; then
    iptables -w -C FORWARD -s "$DSO_TEST_FORWARD_NET" -d "$DSO_TEST_FORWARD_NET" -j ACCEPT 2>/dev/null ||
      iptables -w -I FORWARD -s "$DSO_TEST_FORWARD_NET" -d "$DSO_TEST_FORWARD_NET" -j ACCEPT ||
      log "warning: could not add the FORWARD rule; containers may not reach each other"
  fi
}

wait_for_engine() {
  local pid="$1" deadline=$((SECONDS + 60))
  until engine_answers; do
    if ! kill -0 "$pid" 2>/dev/null && ! engine_pid >/dev/null; then
      log "dockerd exited; last lines of $DSO_TEST_ROOT/dockerd.log:"
      tail -n 30 "$DSO_TEST_ROOT/dockerd.log" >&2 || true
      die "the private Docker engine did not start"
    fi
    if ((SECONDS >= deadline)); then
      log "dockerd does not answer after 60 s; last lines of $DSO_TEST_ROOT/dockerd.log:"
      tail -n 30 "$DSO_TEST_ROOT/dockerd.log" >&2 || true
      die "the private Docker engine did not start"
    fi
    sleep 0.5
  done
}

start_engine() {
  local pid
  if pid="$(engine_pid)"; then
    if engine_answers; then
      log "reusing the engine (pid $pid) on $socket"
    else
      log "waiting for the engine (pid $pid), which is still starting"
      wait_for_engine "$pid"
    fi
    ensure_forward_rule
    return 0
  fi
  ((EUID == 0)) || die "starting the private Docker engine needs root"
  local dockerd=(dockerd)
  case "$DSO_TEST_PROFILE" in
    engine20) command -v dockerd >/dev/null || die "dockerd not found (package docker.io)" ;;
    engine28)
      [[ -z "$(engine28_problem "$engine28_dir")" ]] ||
        die "engine 28 is not in $engine28_dir: run \`DSO_TEST_PROFILE=engine28 bash $0 up\`"
      # Its own docker-init and docker-proxy, not 20.10's; no ip6tables rules either (28
      # writes them by default).
      dockerd=("$engine28_dir/usr/sbin/dockerd"
        --init-path "$engine28_dir/usr/bin/docker-init"
        --userland-proxy-path "$engine28_dir/usr/sbin/docker-proxy"
        --ip6tables=false)
      ;;
  esac
  mkdir -p "$DSO_TEST_ROOT/data" "$DSO_TEST_ROOT/exec"
  rm -f "$pidfile" # stale: its process is gone or is not a dockerd
  setup_bridge
  # Our own (empty) daemon.json, so a system /etc/docker/daemon.json cannot change this engine.
  printf '{}\n' >"$DSO_TEST_ROOT/daemon.json"
  log "starting the private engine on $socket"
  # setsid: a Ctrl-C in the terminal running the tests must not reach the engine directly
  # (the EXIT trap stops it in order). fds 3, 8 and 9 are closed so the engine never holds the
  # caller's $(...) pipe or our locks.
  setsid "${dockerd[@]}" \
    --config-file "$DSO_TEST_ROOT/daemon.json" \
    --data-root "$DSO_TEST_ROOT/data" \
    --exec-root "$DSO_TEST_ROOT/exec" \
    --host "unix://$socket" \
    --pidfile "$pidfile" \
    --bridge "$DSO_TEST_BRIDGE" \
    --default-address-pool "base=$DSO_TEST_ADDR_POOL,size=24" \
    --iptables=false \
    --ip-masq=false \
    </dev/null >"$DSO_TEST_ROOT/dockerd.log" 2>&1 3>&- 8>&- 9>&- &
  wait_for_engine "$!"
  log "engine $(docker version --format '{{.Server.Version}}') is up"
}

# ---------------------------------------------------------------------------------------------
# Test images, built with `docker import` (no registry, no pull)

# The label that says which recipe built an image, so a changed recipe rebuilds it.
readonly recipe_label="dso.test.recipe"

image_is_current() {
  local image="$1" recipe="$2" have
  have="$(docker image inspect --format "{{index .Config.Labels \"$recipe_label\"}}" "$image" \
    2>/dev/null)" || return 1
  [[ "$have" == "$recipe" ]]
}

# busybox-static plus one symlink per applet at its usual place (bin/sh, usr/bin/env, ...),
# and the few files programs expect (passwd, group, a sticky /tmp).
build_busybox_image() {
  local files busybox
  files="$(dpkg -L busybox-static)" || die "busybox-static is not installed"
  busybox="$(grep -m 1 -E '/s?bin/busybox$' <<<"$files")" || die "no busybox in busybox-static"
  local recipe
  recipe="busybox-v1-$(sha256sum "$busybox" | cut -c 1-16)"
  if image_is_current "$busybox_image" "$recipe"; then
    return 0
  fi
  log "building $busybox_image"
  local tmp
  tmp="$(make_temp_dir)"
  local rootfs="$tmp/rootfs"
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,run}
  chmod 1777 "$rootfs/tmp"
  chmod 700 "$rootfs/root"
  cp "$busybox" "$rootfs/bin/busybox"
  local applet
  while IFS= read -r applet; do
    [[ -n "$applet" && ! -e "$rootfs/$applet" && ! -L "$rootfs/$applet" ]] || continue
    mkdir -p "$rootfs/$(dirname "$applet")"
    ln -s /bin/busybox "$rootfs/$applet"
  done < <("$busybox" --list-full)
  [[ -L "$rootfs/bin/sh" ]] || ln -s /bin/busybox "$rootfs/bin/sh"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -c . |
    docker import \
      --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["sh"]' \
      --change "LABEL $recipe_label=$recipe" \
      - "$busybox_image" >/dev/null
}

# One static binary, /catwait (test/fixtures/catwait.c), and nothing else: no shell, no libc.
build_noshell_image() {
  local source="$repo_root/test/fixtures/catwait.c"
  [[ -f "$source" ]] || die "missing $source"
  local cflags=(-static -Os -s -Wall -Wextra)
  local recipe
  recipe="catwait-$(printf '%s\n' "${cflags[*]}" | cat - "$source" | sha256sum | cut -c 1-16)"
  if image_is_current "$noshell_image" "$recipe"; then
    return 0
  fi
  log "building $noshell_image"
  local tmp
  tmp="$(make_temp_dir)"
  mkdir -p "$tmp/rootfs"
  gcc "${cflags[@]}" -o "$tmp/rootfs/catwait" "$source"
  tar --numeric-owner --owner=0 --group=0 -C "$tmp/rootfs" -c catwait |
    docker import \
      --change 'ENTRYPOINT ["/catwait"]' \
      --change "LABEL $recipe_label=$recipe" \
      - "$noshell_image" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Tear-down

# Prints the pids of processes whose parent is $1.
children_of() {
  local stat f
  for f in /proc/[0-9]*/stat; do
    stat="$(cat "$f" 2>/dev/null)" || continue
    stat="${stat##*) }" # after "pid (comm) ": state ppid ...
    read -r _ ppid _ <<<"$stat"
    [[ "$ppid" == "$1" ]] && { f="${f#/proc/}"; printf '%s\n' "${f%/stat}"; }
  done
  return 0
}

# Prints the pids of the containerd and the shims of this engine (their command lines name our
# exec-root) after dockerd itself is gone. (docker-proxy dies with dockerd: parent-death signal.)
engine_leftovers() {
  local f pid comm
  for f in /proc/[0-9]*/cmdline; do
    pid="${f#/proc/}"
    pid="${pid%/cmdline}"
    comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || continue
    case "$comm" in containerd | containerd-shim* | dockerd) ;; *) continue ;; esac
    if tr '\0' ' ' <"$f" 2>/dev/null | grep -qF "$DSO_TEST_ROOT/"; then
      printf '%s\n' "$pid"
    fi
  done
  return 0
}

stop_engine() {
  # "graceful": stop as `systemctl restart docker` or a reboot does (dockerd stops each container
  # itself), so restart policies bring them back at the next start. Otherwise, for teardown, what
  # tests left running is killed first: Docker counts that as a manual stop.
  local mode="${1:-teardown}"
  local pid
  if pid="$(engine_pid)"; then
    log "stopping the engine (pid $pid)"
    # On SIGTERM dockerd gives every running container its stop timeout (10 s by default), and
    # a shell as PID 1 ignores SIGTERM: kill what tests left running, nobody waits for it.
    local running=''
    [[ "$mode" == graceful ]] || running="$(timeout 10 docker ps -q 2>/dev/null || true)"
    if [[ -n "$running" ]]; then
      # shellcheck disable=SC2086 # one id per word
      timeout 20 docker kill $running >/dev/null 2>&1 || true
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "engine still running after 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  # After a SIGKILL (or a crash) containerd and the shims outlive dockerd, and so do the
  # containers. Killing a container's init (a shim's child) ends its whole PID namespace.
  local leftovers leftover child
  mapfile -t leftovers < <(engine_leftovers)
  if ((${#leftovers[@]} > 0)); then
    log "killing leftover engine processes: ${leftovers[*]}"
    for leftover in "${leftovers[@]}"; do
      for child in $(children_of "$leftover"); do
        kill -KILL "$child" 2>/dev/null || true
      done
    done
    kill -KILL "${leftovers[@]}" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile" "$socket"
}

# Unmounts whatever the engine left mounted under $DSO_TEST_ROOT (overlay layers, netns files,
# container shm), deepest first; -R takes submounts, -l is the last resort for a busy one.
unmount_leftovers() {
  local mounts mnt
  mounts="$(awk -v root="$DSO_TEST_ROOT/" 'index($5, root) == 1 { print $5 }' /proc/self/mountinfo |
    awk '{ print length($0) " " $0 }' | sort -rn | cut -d ' ' -f 2-)"
  [[ -n "$mounts" ]] || return 0
  log "unmounting $(wc -l <<<"$mounts") leftover mounts under $DSO_TEST_ROOT"
  while IFS= read -r mnt; do
    mnt="$(printf '%b' "${mnt//\\/\\0}")" # mountinfo escapes blanks as \040
    mountpoint -q "$mnt" 2>/dev/null || continue
    umount -R "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || log "warning: cannot unmount $mnt"
  done <<<"$mounts"
}

teardown_network() {
  if command -v iptables >/dev/null; then
    while iptables -w -D FORWARD -s "$DSO_TEST_FORWARD_NET" -d "$DSO_TEST_FORWARD_NET" -j ACCEPT \
      2>/dev/null; do :; done
  fi
  if ip link show "$DSO_TEST_BRIDGE" >/dev/null 2>&1; then
    ip link del "$DSO_TEST_BRIDGE" 2>/dev/null || log "warning: cannot delete bridge $DSO_TEST_BRIDGE"
  fi
}

# ---------------------------------------------------------------------------------------------

with_lock() {
  mkdir -p "$DSO_TEST_ROOT"
  exec 9>"$DSO_TEST_ROOT/.lock"
  if ! flock -n 9; then
    log "waiting for another set-up or tear-down of $DSO_TEST_ROOT"
    flock -w 600 9 || die "timed out waiting for $DSO_TEST_ROOT/.lock"
  fi
}

cmd_up() {
  local started=$SECONDS
  # stdout carries only the exports; everything else goes to stderr.
  exec 3>&1 1>&2
  with_lock
  local minimal=0
  [[ "${DSO_TEST_ENV_MINIMAL:-0}" == 1 ]] && minimal=1
  if ((minimal)); then
    install_packages "${minimal_packages[@]}"
  else
    install_packages "${engine_packages[@]}" "${moto_packages[@]}"
  fi
  set_exports
  [[ -x "$DSO_TEST_COMPOSE_V1" ]] || die "$DSO_TEST_COMPOSE_V1 (Compose v1) not found"
  setup_docker_config
  ((minimal)) || setup_moto
  start_engine
  build_busybox_image
  if ((!minimal)); then
    build_noshell_image
    # Debian with systemd as PID 1, for the `dso system setup` test (cached; its own script).
    DSO_TEST_CACHE="$DSO_TEST_CACHE" bash "$repo_root/scripts/test-systemd-image.sh" >/dev/null
  fi
  log "ready in $((SECONDS - started)) s: DOCKER_HOST=$DOCKER_HOST"
  print_exports >&3
}

cmd_down() {
  with_lock
  stop_engine
  unmount_leftovers
  teardown_network
  log "engine stopped"
}

cmd_restart() {
  # Nothing on stdout: the caller waits for the command, it reads no exports.
  exec 1>&2
  with_lock
  stop_engine graceful
  unmount_leftovers
  start_engine
}

cmd_purge() {
  cmd_down
  log "deleting $DSO_TEST_ROOT"
  rm -rf --one-file-system "$DSO_TEST_ROOT"
}

case "${1:-up}" in
  up) cmd_up ;;
  down) cmd_down ;;
  restart) cmd_restart ;;
  purge) cmd_purge ;;
  env)
    set_exports
    print_exports
    ;;
  mirror) printf '%s\n' "${DSO_TEST_DEBIAN_MIRROR:-$(debian_mirror)}" ;;
  *)
    printf 'usage: %s [up|down|restart|purge|env|mirror]   (or: source %s)\n' "$0" "$0" >&2
    exit 2
    ;;
esac
