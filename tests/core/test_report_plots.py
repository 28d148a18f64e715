"""Plot helpers: off-scale series are named with their range instead of squashing the axis."""

from __future__ import annotations

from frugalnn.core.report import line_plot, off_scale_series


def test_series_wholly_above_the_axis_limit_are_off_scale(tmp_path):
    series = {
        "ours": ([0.2, 0.5], [40.0, 75.0]),
        "svd": ([0.2, 0.5], [2.6e7, 9.3e7]),
        "crosses": ([0.2, 0.5], [100.0, 5000.0]),  # partly on scale: drawn, clipped by the axis
    }
    assert off_scale_series(series, 300.0) == {"svd": (2.6e7, 9.3e7)}
    assert off_scale_series(series, None) == {}
    path = line_plot(
        tmp_path / "p.png", series, xlabel="x", ylabel="y", logy=True, ymax=300.0, legend_outside=True
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
