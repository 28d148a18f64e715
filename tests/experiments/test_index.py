"""The readable views of results: SUMMARY.md tables from headline rows, and INDEX.md built from the records
of a results folder (what, command, date, headline), checked against records written here by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from frugalnn.core.report import make_record, write_record
from frugalnn.experiments import headline_rows, row, stored_headline
from frugalnn.experiments._index import build_index, headline_table, index_entries, write_summary

ROOT = Path(__file__).resolve().parents[2]


def _livemind_record(base_s: float, live_s: float) -> dict:
    def arm(mean: float, acc: float) -> dict:
        return {"n": 3, "mean_latency_s": mean, "median_latency_s": mean, "accuracy": acc,
                "accuracy_ci95": [acc - 0.2, acc + 0.2]}  # fmt: skip

    summary = {"baseline": arm(base_s, 0.5), "livemind": arm(live_s, 0.4),
               "reduction_vs_baseline": {"mean": 1 - live_s / base_s, "median": 1 - live_s / base_s}}  # fmt: skip
    return make_record("livemind", config={}, seed=42, data={"rows": 3}, results={"summary": summary, "rows": {}},
                       about="three questions", command="bench/bench_livemind.py latency --questions 3")  # fmt: skip


def test_headline_rows_keep_rows_and_flatten_plain_dicts():
    rows = [row("acc", 0.91234567, 0.9, ">= 0.9", True)]
    assert headline_rows(rows) == [
        {"metric": "acc", "ours": 0.9123, "baseline": 0.9, "target": ">= 0.9", "met": True}
    ]
    flat = headline_rows({"vgg": {"acc": 0.9, "macs": 12}, "seconds": 3.5})
    assert [(r["metric"], r["ours"], r["met"]) for r in flat] == [("vgg/acc", 0.9, None), ("vgg/macs", 12, None),
                                                                   ("seconds", 3.5, None)]  # fmt: skip


def test_summary_is_a_table_per_experiment(tmp_path):
    runs = [
        {"experiment": "a", "summary": "first", "seconds": 1.25, "folder": "a",
         "headline": [row("ppl", 58.7321, 58.74, "within 3%", True), row("x", 2_500_000.0)]},
        {"experiment": "b", "summary": "second", "seconds": 2.0, "folder": "b", "headline": {"acc": 0.5}},
    ]  # fmt: skip
    text = write_summary(tmp_path / "SUMMARY.md", runs).read_text()
    assert "## a: first" in text and "## b: second" in text and "{" not in text
    assert "| ppl | 58.73 | 58.74 | within 3% | yes |" in text
    assert "| x | 2.5e+06 | — | — | — |" in text
    assert "| acc | 0.5 | — | — | — |" in text
    assert headline_table([]) == "(no headline)\n"


def test_index_lists_every_record_with_command_date_and_headline(tmp_path):
    write_record(tmp_path / "livemind" / "fast.json", _livemind_record(1.0, 0.3))  # 70% lower: target met
    write_record(tmp_path / "livemind" / "slow.json", _livemind_record(1.0, 0.9))
    (tmp_path / "livemind" / "fast.md").write_text("table")
    (tmp_path / "livemind" / "fast_hist.png").write_bytes(b"png")
    other = make_record("anything", config={}, seed=None, data=None, results=[1, 2, 3])
    write_record(tmp_path / "misc" / "other.json", other)
    (tmp_path / "misc" / "not_a_record.json").write_text(json.dumps({"rows": []}))
    entries = {e["file"]: e for e in index_entries(tmp_path)}
    assert set(entries) == {"livemind/fast.json", "livemind/slow.json", "misc/other.json"}
    fast, slow = entries["livemind/fast.json"], entries["livemind/slow.json"]
    assert (
        fast["what"] == "three questions"
        and fast["command"] == "bench/bench_livemind.py latency --questions 3"
    )
    assert fast["table"] == "livemind/fast.md" and slow["table"] is None
    assert "**0.3** (vs 1) ✓" in fast["headline"] and "**0.9** (vs 1) ✗" in slow["headline"]
    assert entries["misc/other.json"]["headline"] == "3 rows"
    assert entries["misc/other.json"]["command"]  # make_record stored the running command line
    text = build_index(tmp_path)
    assert "## livemind/ — experiment `livemind`" in text and "## misc/" in text
    assert "[fast.json](livemind/fast.json) ([table](livemind/fast.md))" in text
    assert "[fast_hist.png](livemind/fast_hist.png)" in text and "not_a_record" not in text


def test_stored_headline_of_another_shape_is_none():
    assert stored_headline("livemind", {"name": "x", "results": {"rows": []}}) is None
    assert stored_headline("no-such-folder", {"results": {}}) is None


def test_committed_index_is_current():
    """docs/results/INDEX.md is what the generator makes from the committed records (regenerate with
    `frugalnn reproduce --index docs/results` after adding or moving a record)."""
    results = ROOT / "docs" / "results"
    assert (results / "INDEX.md").read_text() == build_index(results)


def test_cli_index_writes_the_file_and_rejects_a_missing_folder(tmp_path):
    write_record(tmp_path / "livemind" / "fast.json", _livemind_record(1.0, 0.3))
    cli = [sys.executable, "-m", "frugalnn.cli", "reproduce", "--index"]
    done = subprocess.run([*cli, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "fast.json" in (tmp_path / "INDEX.md").read_text()
    bad = subprocess.run([*cli, str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "not a folder" in bad.stderr
