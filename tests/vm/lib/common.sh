# Shared helpers for the real-kernel harness: cache layout, logging, apt helpers.
# Sourced by tests/vm/run and the other lib/*.sh scripts; defines functions only.

VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$VM_DIR/../.." && pwd)"
# Downloads, unpacked kernels and built artefacts live outside the repo so a clean clone
# stays small and a second run is fast.
CACHE="${VFIO_DIRTY_CACHE:-$HOME/.cache/vfio-dirty}/vm"
mkdir -p "$CACHE"

log() { printf '[vm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[vm] ERROR: %s\n' "$*" >&2; exit 1; }

# Install Debian packages that are missing (only possible as root; otherwise say what is missing).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing Debian packages (run as root to install): ${missing[*]}"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Debian archive URI the machine already uses, so the private trixie configuration
# talks to the same mirror (or snapshot) as the rest of apt.
debian_archive_uri() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri="$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
      /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# apt-get with a private configuration for another suite ($1), leaving the machine's apt alone.
# Usage: private_apt SUITE update | private_apt SUITE download PKG...
private_apt() {
  local suite="$1"; shift
  local a="$CACHE/apt-$suite"
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/empty"
  echo "deb $(debian_archive_uri) $suite main" >"$a/sources.list"
  apt-get -q -o Dir::Etc::sourcelist="$a/sources.list" -o Dir::Etc::sourceparts="$a/empty" \
    -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" -o Dir::Etc::preferences=/dev/null \
    -o Dir::Etc::preferencesparts="$a/empty" "$@"
}

# sha256 of stdin, short.
short_hash() { sha256sum | cut -c1-16; }
