"""`frugalnn reproduce` replaces a report folder as a unit: a failed experiment leaves nothing and the
previous report stays; a killed one leaves its work folder, from which the next run resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from frugalnn.commands.reproduce import _build_report
from frugalnn.experiments import Experiment


def _writer(rows_seen: list[int], fail: bool = False):
    def run(out_dir: Path, quick: bool, seed: int) -> list:
        log = out_dir / "rows.jsonl"
        rows = log.read_text().splitlines() if log.exists() else []
        rows_seen.append(len(rows))
        log.write_text("\n".join([*rows, "row"]))
        if fail:
            raise RuntimeError("experiment failed")
        (out_dir / "report.md").write_text(f"{len(rows) + 1} rows")
        return [{"metric": "rows", "ours": len(rows) + 1, "baseline": None, "target": "-", "met": True}]

    return run


def test_success_replaces_the_folder_and_failure_leaves_the_old_report(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "exp"
    seen: list[int] = []
    _build_report(Experiment("exp", _writer(seen), "s", 1), out, True, 0)
    assert (out / "report.md").read_text() == "1 rows"
    with pytest.raises(RuntimeError):
        _build_report(Experiment("exp", _writer(seen, fail=True), "s", 1), out, True, 0)
    assert (out / "report.md").read_text() == "1 rows"  # the previous report is untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["exp"]  # no work folder left


def test_a_killed_run_resumes_from_its_work_folder(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    work = tmp_path / ".exp.work"
    work.mkdir()
    (work / "rows.jsonl").write_text("row")  # what a killed run left
    seen: list[int] = []
    head = _build_report(Experiment("exp", _writer(seen), "s", 1), out, True, 0)
    assert seen == [1] and head[0]["ours"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
