"""The experiment's equal-accuracy comparison (pure functions; the study itself runs in the bench)."""

from __future__ import annotations

import pytest

from frugalnn.experiments.early_exit.report import matched_macs as _matched_macs


def test_matched_macs_interpolates_along_the_pareto_front():
    # (accuracy, MACs); (0.80, 9) is dominated by (0.85, 8) and must be ignored
    curve = [(0.85, 8.0), (0.90, 10.0), (0.80, 9.0), (0.92, 20.0)]
    assert _matched_macs(curve, 0.875) == pytest.approx(9.0)  # halfway between 8 and 10
    assert _matched_macs(curve, 0.91) == pytest.approx(15.0)
    assert _matched_macs(curve, 0.70) == pytest.approx(8.0)  # cheapest point already good enough
    assert _matched_macs(curve, 0.95) is None  # never that accurate
