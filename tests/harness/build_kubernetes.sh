#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager for the test cluster from Debian bookworm's
# `kubernetes` source package with Debian's Go, and makes sure Debian's etcd is installed.
# Idempotent and cached: ${CANOPY_CACHE_DIR:-$HOME/.cache/canopy}/kubernetes/<version>/bin holds the two
# binaries; when both are there and run, this exits at once. Cold: ~5-11 minutes on 2 cores.
# Prints the cache bin directory on stdout as its last line; the build log stays in the cache directory.
set -euo pipefail

KUBE_DEB_VERSION="1.20.5+really1.20.2"   # upstream version of Debian's source package (real: v1.20.2)
CACHE="${CANOPY_CACHE_DIR:-$HOME/.cache/canopy}/kubernetes/$KUBE_DEB_VERSION"
BIN="$CACHE/bin"
LOG="$CACHE/build.log"
BINARIES=(kube-apiserver kube-controller-manager)
PACKAGES=(golang-go rsync jq etcd-server golang-github-modern-go-reflect2-dev dpkg-dev make)
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
SRC_LIST=/etc/apt/sources.list.d/canopy-debian-src.sources

say() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

binaries_work() {
  local b
  for b in "${BINARIES[@]}"; do
    [ -x "$BIN/$b" ] && "$BIN/$b" --version >/dev/null 2>&1 || return 1
  done
}

ensure_packages() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1
}

have_source() { [ -n "$(apt-cache showsrc kubernetes 2>/dev/null | sed -n '/^Package: kubernetes$/p')" ]; }

ensure_deb_src() {
  # Source lines for the same archives as the machine's binary ones, in a file of our own (deb822 format).
  have_source && return 0
  if [ ! -f "$SRC_LIST" ]; then
    local from=/etc/apt/sources.list.d/debian.sources
    if [ -f "$from" ]; then
      sed 's/^Types: deb$/Types: deb-src/' "$from" | as_root tee "$SRC_LIST" >/dev/null
    else
      printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n%s\n' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' | as_root tee "$SRC_LIST" >/dev/null
    fi
    say "enabled deb-src in $SRC_LIST"
  fi
  as_root apt-get update -qq
  have_source || { say "apt knows no source package 'kubernetes' (deb-src for bookworm missing?)"; exit 1; }
}

if binaries_work && command -v etcd >/dev/null; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9   # one build at a time; a second caller waits, then finds the binaries
start=$(date +%s)
: >"$LOG"
ensure_packages
if binaries_work; then echo "$BIN"; exit 0; fi
ensure_deb_src

WORK="$CACHE/work"
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
say "fetching Debian's kubernetes source package (log: $LOG)"
(cd "$WORK" && apt-get source -qq kubernetes) >>"$LOG" 2>&1 || { say "apt-get source kubernetes failed; see $LOG"; exit 1; }
SRC="$WORK/kubernetes-$KUBE_DEB_VERSION"
[ -d "$SRC" ] || { say "expected $SRC; Debian's source package changed? see $LOG"; exit 1; }

# reflect2 1.0.1 (vendored) breaks on Go >= 1.18; Debian's 1.0.2 works.
rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
cp -rL "$REFLECT2" "$SRC/vendor/github.com/modern-go/reflect2"

say "building ${BINARIES[*]} (several minutes)"
# GOPATH mode, as Debian's own package build does; version info comes from the tarball's export-subst
# values in hack/lib/version.sh (v1.20.2). The Makefile keeps GOPATH and GOCACHE inside _output.
(cd "$SRC" && env GO111MODULE=off GOFLAGS= CGO_ENABLED=0 HOME="$WORK" \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager") >>"$LOG" 2>&1 \
  || { say "make failed; last lines of $LOG:"; tail -20 "$LOG" >&2; exit 1; }

mkdir -p "$BIN"
for b in "${BINARIES[@]}"; do
  install -m 0755 "$SRC/_output/bin/$b" "$BIN/$b.tmp"
  mv "$BIN/$b.tmp" "$BIN/$b"
done
binaries_work || { say "built binaries do not run; see $LOG"; exit 1; }
say "built $("$BIN/kube-apiserver" --version) in $(( $(date +%s) - start ))s into $BIN"
echo "$BIN"
