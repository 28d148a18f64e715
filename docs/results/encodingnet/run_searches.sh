#!/usr/bin/env bash
# The four 8-bit encoder searches of the threshold sweep (resumable: rerun the same line after a kill).
set -e
for spec in "0.02 44" "0.05 36" "0.01 48" "0.005 52"; do
  set -- $spec
  python -m frugalnn.cli encoding search --preset ours --threshold "$1" --kept-bits "$2" \
    --out "docs/results/encodingnet/search8/th$1" --no-progress
done
