#!/usr/bin/env bash
# Installs the gate-level tool chain (yosys, iverilog, verilator, OpenSTA, abc) from Debian.
# Programs need a system install (apt-get, root); data assets do not (see fetch_assets.sh).
set -euo pipefail
need=()
command -v yosys >/dev/null || need+=(yosys)
command -v iverilog >/dev/null || need+=(iverilog)
command -v verilator >/dev/null || need+=(verilator)
command -v sta >/dev/null || need+=(opensta)
command -v berkeley-abc >/dev/null || command -v yosys-abc >/dev/null || need+=(berkeley-abc)
[ ${#need[@]} -eq 0 ] && exit 0
echo "[tools] installing ${need[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "[tools] error: ${need[*]} missing and not root; run: sudo apt-get install ${need[*]}" >&2; exit 2; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
echo "[tools] installed ${need[*]}"
