import json
import os

import pytest

from frugalnn.core.io import atomic_output_dir, atomic_write_json, atomic_write_text
from frugalnn.core.report import line_plot, make_record, markdown_table, write_record
from frugalnn.errors import ConfigError


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_output_dir_on_error_keeps_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_output_dir(out) as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("crash mid-write")
    assert not out.exists() and os.listdir(tmp_path) == []
    with atomic_output_dir(out) as tmp:
        (tmp / "ok.txt").write_text("done")
    assert (out / "ok.txt").read_text() == "done"
    with pytest.raises(ConfigError, match="already exists"), atomic_output_dir(out):
        pass
    assert (out / "ok.txt").exists(), "an existing folder must never be lost"


def test_record_has_identity_and_versions(tmp_path):
    rec = make_record("x", config={"a": 1}, seed=3, data={"sha256": "abc"}, results={"acc": 0.5})
    for key in ("config", "seed", "data", "versions", "results", "created_utc"):
        assert key in rec
    assert {"torch", "numpy", "frugalnn", "python"} <= set(rec["versions"])
    write_record(tmp_path / "r.json", rec)
    assert json.loads((tmp_path / "r.json").read_text())["seed"] == 3


def test_markdown_and_plot(tmp_path):
    table = markdown_table([{"m": "a", "acc": 0.91234}, {"m": "b", "acc": 1.0}])
    assert table.splitlines()[0] == "| m | acc |" and "0.912" in table
    png = line_plot(tmp_path / "p.png", {"s": ([1, 2], [3, 4])}, xlabel="x", ylabel="y")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    atomic_write_json(tmp_path / "j.json", {"k": 1})


def test_json_is_strict_and_files_get_the_usual_permissions(tmp_path):
    import json
    import math
    import os

    import numpy as np

    from frugalnn.core.io import atomic_output_dir, atomic_write_json

    path = atomic_write_json(
        tmp_path / "r.json", {"a": float("nan"), "b": [1.0, math.inf, np.float32(-np.inf)], "c": 2}
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None, None], "c": 2}
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "p.json", {})
        with atomic_output_dir(tmp_path / "folder") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755
