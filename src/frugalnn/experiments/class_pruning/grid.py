"""The bench's grid of the ``class-pruning`` protocol: resumable per-tag grid files
(``class_pruning_<tag>.json``), a JSON plan of cells run on several processes (a GPU machine), the import
of their JSON-lines rows into per-budget grid files, and the merge of tags into ``class_pruning.json``.
Pruned checkpoints go to ``$FRUGALNN_CACHE/bench/class_pruning``."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from frugalnn.core.assets import cache_dir
from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.report import make_record, markdown_table, write_record
from frugalnn.experiments.class_pruning.protocol import BUDGETS, FULL_BUDGET, run_one
from frugalnn.experiments.class_pruning.report import write_report


def save_dir() -> Path:
    """Where the bench keeps pruned checkpoints (and ``base-<model>`` snapshots)."""
    return cache_dir() / "bench" / "class_pruning"


def row_key(r: dict) -> tuple:
    return (r["model"], r["method"], r["target_flops"], r["seed"], r.get("round_to", 4))


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"]["rows"] if path.exists() else []


def grid_rows(results: Path, tags: list[str] | None = None) -> list[dict]:
    """Rows of the per-tag grid files class_pruning_<tag>.json (every tag when None; never the throughput /
    widths files). Tags differ in starting model and budget, so merge one comparable set at a time."""
    files = [
        p
        for p in sorted(results.glob("class_pruning_*.json"))
        if "throughput" not in p.stem
        and "widths" not in p.stem
        and "stage_search" not in p.stem
        and (tags is None or p.stem.removeprefix("class_pruning_") in tags)
    ]
    return [r for p in files for r in _rows(p)]


def grid(
    results: Path,
    *,
    tag: str,
    budget_name: str,
    distill: float | None,
    seeds: list[int],
    targets: list[float],
    models: list[str],
    methods: list[str],
    round_to: int,
    base_kind: str,
) -> None:
    data = load_fashion_mnist(seed=0)
    path = results / f"class_pruning_{tag}.json" if tag else results / "class_pruning.json"
    rows = _rows(path)
    done = {row_key(r) for r in rows}
    budget = {**BUDGETS[budget_name]}
    if distill is not None:
        budget["distill_weight"] = distill
    checkpoints = save_dir() / tag if tag else save_dir()
    config = {"budget": budget, "budget_name": budget_name, "threads": 1, "equal_budget": True}
    for seed in seeds:
        for target in targets:
            for model in models:
                for method in methods:
                    key = (model, method, target, seed, round_to)
                    if key in done:
                        continue
                    print(f"== {key}", flush=True)
                    base = save_dir() / f"base-{model}" if base_kind == "snapshot" else None
                    row = run_one(
                        model, method, target, seed, data, budget, checkpoints, True, round_to, base
                    )
                    row["base"] = str(base or "zoo")
                    row["budget"] = budget
                    rows.append(row)
                    print(
                        f"   test {row['test_accuracy']:.4f} (dense {row['dense_test_accuracy']:.4f}, "
                        f"drop {row['accuracy_drop_points']:.2f} pts) MAC cut {row['mac_reduction']:.1%} "
                        f"params {row['params']:,} in {row['seconds']:.0f} s",
                        flush=True,
                    )
                    report = write_report(results, rows, path.stem, plots=False)
                    record = make_record(
                        "class_pruning", config=config, seed=None, data=data.identity,
                        results={"rows": rows, "table": report["table"]},
                    )  # fmt: skip
                    write_record(path, record)
    print(markdown_table(write_report(results, rows, path.stem, plots=False)["table"], digits=2))


_DATA = None


def _plan_worker_init(threads: int) -> None:
    global _DATA
    torch.set_num_threads(threads)
    _DATA = load_fashion_mnist(seed=0)


def _plan_job(job: dict) -> dict:
    budget = {**BUDGETS[job["budget"]]}
    row = run_one(
        job["model"], job["method"], job["target"], job["seed"], _DATA, budget, None, False,
        job["round_to"], None, job["device"],
    )  # fmt: skip
    row.update(base="zoo", budget=budget, budget_name=job["budget"], torch=torch.__version__)
    return row


def plan(results: Path, *, plan_file: str, rows_file: str, device: str, workers: int) -> None:
    """Run a list of grid cells from a JSON plan (``[{model, method, target, seed, budget, round_to}]``,
    in priority order) on ``--workers`` processes, appending each finished row to ``--rows`` (JSON lines):
    for a machine with many cores and a GPU, where every process fine-tunes on ``--device`` and scores and
    evaluates on one CPU thread of its own. Cells already in ``--rows`` are skipped, so a rerun resumes.
    ``import-rows`` turns the lines into the per-budget grid files afterwards."""
    import concurrent.futures as cf
    import multiprocessing as mp

    jobs = json.loads(Path(plan_file).read_text())
    out = Path(rows_file)
    done = set()
    if out.exists():
        done = {(r["model"], r["method"], r["target_flops"], r["seed"], r["round_to"], r["budget_name"])
                for r in map(json.loads, out.read_text().splitlines())}  # fmt: skip
    todo = [
        {**j, "device": device}
        for j in jobs
        if (j["model"], j["method"], j["target"], j["seed"], j["round_to"], j["budget"]) not in done
    ]
    print(f"{len(todo)} of {len(jobs)} cells to run on {workers} workers ({device})", flush=True)
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, ctx, _plan_worker_init, (1,)) as pool:
        futures = {pool.submit(_plan_job, j): j for j in todo}  # submitted in priority order
        for fut in cf.as_completed(futures):
            j = futures[fut]
            try:
                row = fut.result()
            except Exception as err:  # one bad cell must not lose the others
                print(f"FAILED {j}: {type(err).__name__}: {err}", flush=True)
                continue
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{j['budget']} {j['model']} {j['method']} keep {j['target']} s{j['seed']}: "
                f"test {row['test_accuracy']:.4f} (drop {row['accuracy_drop_points']:.2f}) in {row['seconds']:.0f} s",
                flush=True,
            )


def import_rows(results: Path, *, rows_file: str, prefix: str) -> None:
    """JSON lines from ``plan`` → docs/results/class_pruning/class_pruning_<prefix>-<budget>.json / .md, one per budget."""
    rows = [json.loads(line) for line in Path(rows_file).read_text().splitlines() if line.strip()]
    data = load_fashion_mnist(seed=0)
    for budget in sorted({r["budget_name"] for r in rows}):
        mine = [r for r in rows if r["budget_name"] == budget]
        path = results / f"class_pruning_{prefix}-{budget}.json"
        report = write_report(results, mine, path.stem, plots=False)
        config = {
            "budget": BUDGETS[budget], "budget_name": budget, "threads": 1, "equal_budget": True,
            "device": sorted({r["device"] for r in mine}), "torch_on_device": sorted({r["torch"] for r in mine}),
        }  # fmt: skip
        record = make_record(
            "class_pruning", config=config, seed=None, data=data.identity,
            results={"rows": mine, "table": report["table"]},
        )  # fmt: skip
        write_record(path, record)
        print(f"{path.name}: {len(mine)} rows")
        print(markdown_table(report["table"], digits=2))


def merge(results: Path, *, tags: list[str] | None) -> None:
    """Join the per-tag grids (--tags) into class_pruning.json / .md / plots."""
    rows = grid_rows(results, tags)
    report = write_report(results, rows)
    config = {
        "budget": FULL_BUDGET,
        "threads": 1,
        "equal_budget": True,
        "merged_from": [f"class_pruning_{t}.json" for t in tags],
    }
    data = load_fashion_mnist(seed=0)
    record = make_record(
        "class_pruning",
        config=config,
        seed=None,
        data=data.identity,
        results={"rows": rows, "table": report["table"]},
    )
    write_record(results / "class_pruning.json", record)
    print(markdown_table(report["table"], digits=2))
