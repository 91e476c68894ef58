#!/bin/sh
# Fetch Debian's linux-libc-dev (kernel uAPI headers) for a suite into a cache outside the repo,
# through a private apt configuration that leaves the machine's own apt setup untouched.
#
#   scripts/fetch-headers.sh trixie             # prints the unpacked include dir, e.g. ~/.cache/vfio-dirty/headers/trixie/usr/include
#   scripts/fetch-headers.sh --installed trixie # the same, but only from the cache: exit 3 if not fetched
#
# Fetching is an install step (CI's .ci/run does it before `npm test`); the header test itself
# only asks with --installed, so no test touches the network.
#
# The archive URL is the one the machine already uses (deb.debian.org or a mirror), read from
# /etc/apt/sources.list{,.d/*}; only the suite differs. A finished unpack is marked with a
# ".complete" file, so later runs do no network access at all.
set -eu

installed_only=""
if [ "${1:-}" = --installed ]; then installed_only=1; shift; fi
suite="${1:?usage: fetch-headers.sh [--installed] <suite>}"
case "$suite" in
  *[!a-z0-9-]*) echo "fetch-headers: bad suite name: $suite" >&2; exit 2 ;;
esac

cache="${VFIO_DIRTY_CACHE:-${HOME:-/tmp}/.cache/vfio-dirty}/headers"
dest="$cache/$suite"
if [ -f "$dest/.complete" ]; then
  echo "$dest/usr/include"
  exit 0
fi
if [ -n "$installed_only" ]; then
  echo "fetch-headers: $suite headers are not fetched: run packages/vfio-adapter/scripts/fetch-headers.sh $suite" >&2
  exit 3
fi

# The Debian archive the machine already uses: first deb.debian.org-style URI that serves
# "bookworm" (deb822 "URIs:" lines or one-line "deb URL suite" entries).
archive=""
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
  [ -f "$f" ] || continue
  archive=$(awk '
    /^URIs:/ { uri = $2 }
    /^Suites:/ && uri != "" { for (i = 2; i <= NF; i++) if ($i == "bookworm" || $i == "trixie" || $i == "sid") { print uri; exit } }
    /^deb / { u = $2; if ($2 ~ /^\[/) u = $3; for (i = 3; i <= NF; i++) if ($i == "bookworm" || $i == "trixie" || $i == "sid") { print u; exit } }
  ' "$f")
  [ -n "$archive" ] && break
done
if [ -z "$archive" ]; then
  echo "fetch-headers: no Debian archive found in /etc/apt/sources.list{,.d}" >&2
  exit 1
fi

# A private work dir per run, so two runs at once (parallel test workers, two checkouts sharing
# the cache) never see each other's half-written files; the finished tree is moved into place.
mkdir -p "$cache"
work=$(mktemp -d "$cache/.apt-$suite.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/empty" "$work/debs" "$work/root"
echo "deb $archive $suite main" > "$work/sources.list"
opts="-o Dir::Etc::sourcelist=$work/sources.list -o Dir::Etc::sourceparts=$work/empty
  -o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache -o Dir::Etc::preferences=/dev/null
  -o Dir::Etc::preferencesparts=$work/empty -o APT::Architecture=$(dpkg --print-architecture) -o Acquire::Languages=none
  -o Debug::NoLocking=true -o APT::Sandbox::User=root -qq"

# shellcheck disable=SC2086
apt-get $opts update >&2
# shellcheck disable=SC2086
(cd "$work/debs" && apt-get $opts download linux-libc-dev >&2)
deb=$(ls "$work/debs"/linux-libc-dev_*.deb | head -n 1)
dpkg -x "$deb" "$work/root"
basename "$deb" > "$work/root/.package"
touch "$work/root/.complete"
if [ ! -f "$dest/.complete" ]; then
  rm -rf "$dest"
  mv "$work/root" "$dest" 2>/dev/null || [ -f "$dest/.complete" ]
fi
echo "$dest/usr/include"
