#!/bin/sh
# A wasm2c that can translate bitmap.wasm (SIMD: wabt 1.0.33 or newer), with its runtime sources and
# the SIMDe headers its output includes, laid out in one directory:
#
#   scripts/fetch-wasm2c.sh               # prints DIR: DIR/bin/wasm2c, DIR/include (wasm-rt.h, simde/),
#                                         #   DIR/src (wasm-rt-impl.c, wasm-rt-mem-impl.c and their .inc)
#   scripts/fetch-wasm2c.sh --installed   # the same, but never downloads: exit 3 if not fetched
#
# The machine's own wabt is used when it is new enough (Debian trixie and later). Debian bookworm's
# wabt 1.0.32 predates SIMD support in wasm2c and aborts on the core, so on bookworm this takes
# trixie's wabt 1.0.36 and libsimde-dev, plus the trixie C and C++ runtime libraries that wabt
# build needs, through a private apt configuration that leaves the machine's apt setup untouched,
# and runs wasm2c through trixie's dynamic loader. Only the translator comes from trixie: the C it
# writes is compiled by the system's cc against its own libc.
#
# Fetching is an install step (CI's .ci/run does it before `npm test`); the wasm2c test and the
# bench only ask with --installed, so no test touches the network.
set -eu

installed_only=""
if [ "${1:-}" = --installed ]; then installed_only=1; shift; fi

cache="${VFIO_DIRTY_CACHE:-${HOME:-/tmp}/.cache/vfio-dirty}/wasm2c"

# The system's wasm2c, if it has SIMD (1.0.33+) and SIMDe and the runtime sources are installed.
system_ok() {
  command -v wasm2c >/dev/null 2>&1 || return 1
  v=$(wasm2c --version 2>/dev/null) || return 1
  minor=${v##*.}
  case "$v" in 1.0.*) [ "$minor" -ge 33 ] 2>/dev/null || return 1 ;; *) ;; esac
  [ -f /usr/include/simde/wasm/simd128.h ] && [ -f /usr/src/wasm2c/wasm-rt-mem-impl.c ]
}

if system_ok; then
  dest="$cache/system"
  mkdir -p "$dest/bin" "$dest/include"
  ln -sf "$(command -v wasm2c)" "$dest/bin/wasm2c"
  ln -sf /usr/include/wasm-rt.h /usr/include/wasm-rt-exceptions.h /usr/include/simde "$dest/include/"
  ln -sfn /usr/src/wasm2c "$dest/src"
  echo "$dest"
  exit 0
fi

suite=trixie
dest="$cache/$suite"
if [ -f "$dest/.complete" ]; then
  echo "$dest"
  exit 0
fi
if [ -n "$installed_only" ]; then
  echo "fetch-wasm2c: no wasm2c with SIMD: run packages/bitmap-wasm/scripts/fetch-wasm2c.sh" >&2
  exit 3
fi

# The Debian archive the machine already uses (deb822 "URIs:" or one-line "deb URL suite" entries).
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
  echo "fetch-wasm2c: no Debian archive found in /etc/apt/sources.list{,.d}" >&2
  exit 1
fi

# A private work dir per run; the finished tree is moved into place.
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
(cd "$work/debs" && apt-get $opts download wabt libsimde-dev libc6 libstdc++6 libgcc-s1 libssl3t64 >&2)
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/root/sys"; done
(cd "$work/debs" && ls ./*.deb) > "$work/root/.packages"
lib="$work/root/sys/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
mkdir -p "$work/root/bin" "$work/root/include"
# wasm2c through trixie's loader and libraries; paths are resolved where the tree finally lives.
cat > "$work/root/bin/wasm2c" <<EOF
#!/bin/sh
here=\$(cd "\$(dirname "\$0")/.." && pwd)
lib="\$here/sys/${lib#"$work/root/sys/"}"
exec "\$lib/ld-linux-x86-64.so.2" --library-path "\$lib" "\$here/sys/usr/bin/wasm2c" "\$@"
EOF
chmod +x "$work/root/bin/wasm2c"
ln -s ../sys/usr/include/wasm-rt.h ../sys/usr/include/wasm-rt-exceptions.h ../sys/usr/include/simde "$work/root/include/"
# The runtime's sources with the .inc files they include from their own directory.
ln -s sys/usr/src/wasm2c "$work/root/src"
"$work/root/bin/wasm2c" --version >/dev/null
touch "$work/root/.complete"
if [ ! -f "$dest/.complete" ]; then
  rm -rf "$dest"
  mv "$work/root" "$dest" 2>/dev/null || [ -f "$dest/.complete" ]
fi
echo "$dest"
