#!/bin/sh
# Installs a DSO binary as the `docker dso` CLI plugin and as `dso`, from dist/ or a file you
# downloaded. Needs no network. Usage: scripts/install.sh [--global] [--bin-dir DIR] [FILE]
set -eu

usage() {
  cat <<USAGE
Usage: install.sh [--global] [--bin-dir DIR] [FILE]

Installs FILE (default: dist/dso-<os>-<arch> next to this script, or ./dso-<os>-<arch>)
  - as the Docker CLI plugin docker-dso, so \`docker dso\` works:
      user:    \${DOCKER_CONFIG:-~/.docker}/cli-plugins/docker-dso (with the DOCKER_CONFIG of
               scripts/test-env.sh: your own plugin directory, which that config searches too)
      --global /usr/local/lib/docker/cli-plugins/docker-dso   (needs root)
  - and as \`dso\` in ~/.local/bin (user) or /usr/local/bin (--global), or --bin-dir DIR.
If FILE.sha256 or SHA256SUMS lies beside FILE, the checksum is verified first.
USAGE
}

global=0
bin_dir=""
src=""
while [ $# -gt 0 ]; do
  case "$1" in
    --global) global=1 ;;
    --bin-dir) shift; bin_dir="${1:?--bin-dir needs a directory}" ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) src="$1" ;;
  esac
  shift
done

os=$(uname -s | tr '[:upper:]' '[:lower:]')
case "$(uname -m)" in
  x86_64|amd64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) echo "install.sh: unsupported CPU $(uname -m); DSO ships for x64 and arm64" >&2; exit 1 ;;
esac
name="dso-$os-$arch"

if [ -z "$src" ]; then
  here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
  for candidate in "$here/../dist/$name" "./$name"; do
    if [ -f "$candidate" ]; then src="$candidate"; break; fi
  done
  if [ -z "$src" ]; then
    echo "install.sh: no $name found in dist/ or the current directory" >&2
    echo "  build it with \`npm run build\`, or pass the downloaded file: install.sh ./$name" >&2
    exit 1
  fi
fi
[ -f "$src" ] || { echo "install.sh: $src does not exist" >&2; exit 1; }

# Verify a checksum shipped beside the binary, when there is one.
dir=$(dirname -- "$src"); base=$(basename -- "$src")
sum_line=""
if [ -f "$src.sha256" ]; then sum_line=$(cat "$src.sha256")
elif [ -f "$dir/SHA256SUMS" ]; then sum_line=$(grep " $base\$" "$dir/SHA256SUMS" || true)
fi
if [ -n "$sum_line" ]; then
  want=$(echo "$sum_line" | awk '{print $1}')
  if command -v sha256sum >/dev/null 2>&1; then got=$(sha256sum "$src" | awk '{print $1}')
  else got=$(shasum -a 256 "$src" | awk '{print $1}'); fi
  if [ "$want" != "$got" ]; then
    echo "install.sh: checksum mismatch for $src (expected $want, got $got); not installing" >&2
    exit 1
  fi
  echo "checksum ok: $base"
fi

chmod +x "$src" 2>/dev/null || true
if ! "$src" docker-cli-plugin-metadata 2>/dev/null | grep -q '"SchemaVersion"'; then
  echo "install.sh: $src does not run on this machine (wrong OS/CPU or a damaged file)" >&2
  exit 1
fi

if [ "$global" = 1 ]; then
  plugin_dir=/usr/local/lib/docker/cli-plugins
  [ -n "$bin_dir" ] || bin_dir=/usr/local/bin
else
  config="${DOCKER_CONFIG:-$HOME/.docker}"
  plugin_dir="$config/cli-plugins"
  # The private DOCKER_CONFIG of scripts/test-env.sh goes with its engine: install into the
  # user's own plugin directory, which it names (and searches too, so `docker dso` works in
  # both).
  if [ -f "$config/dso-test-env" ]; then
    user_dir=$(head -n 1 "$config/dso-test-env")
    case "$user_dir" in
      /*) plugin_dir="$user_dir"
          echo "note: DOCKER_CONFIG is the test engine's ($config); installing into $plugin_dir, which it also searches" ;;
      *) echo "install.sh: $config/dso-test-env names no directory; run scripts/test-env.sh up again" >&2; exit 1 ;;
    esac
  fi
  [ -n "$bin_dir" ] || bin_dir="$HOME/.local/bin"
fi

mkdir -p "$plugin_dir" "$bin_dir"
# Copy to a temporary name, then rename: a running `docker dso` is never left half-replaced.
cp "$src" "$plugin_dir/.docker-dso.tmp.$$"
chmod 0755 "$plugin_dir/.docker-dso.tmp.$$"
mv -f "$plugin_dir/.docker-dso.tmp.$$" "$plugin_dir/docker-dso"
ln -sf "$plugin_dir/docker-dso" "$bin_dir/dso"

version=$("$plugin_dir/docker-dso" version)
echo "installed $version"
echo "  docker plugin: $plugin_dir/docker-dso   (try: docker dso --help)"
echo "  command:       $bin_dir/dso"
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) echo "  note: $bin_dir is not in your PATH; add it, or use \`docker dso\`" ;;
esac
