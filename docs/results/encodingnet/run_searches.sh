#!/usr/bin/env bash
# The four 8-bit encoder searches of the threshold sweep (resumable: rerun after a kill).
# Settings = FULL["sweep"] in src/frugalnn/experiments/encodingnet/protocol.py (preset "ours").
set -e
for spec in "0.02 44 600" "0.05 36 300" "0.01 48 300" "0.005 52 300"; do
  set -- $spec
  python -m frugalnn.cli encoding search --preset ours --threshold "$1" --kept-bits "$2" --generations "$3" \
    --out "docs/results/encodingnet/search8/th$1" --no-progress
done
