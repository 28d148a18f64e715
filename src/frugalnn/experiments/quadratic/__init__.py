"""Efficient quadratic neurons vs linear vs the earlier quadratic forms at matched parameter budgets
(arXiv 2306.07294; protocol in ``protocol.py``, table and plot in ``report.py``).

Every (model, form, seed) run appends one line to ``runs.jsonl`` in the output folder; a rerun skips
the runs already there, so a killed benchmark resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.io import atomic_write_text
from frugalnn.core.measure import count_macs
from frugalnn.core.models import ModelSpec
from frugalnn.core.report import make_record, markdown_table, write_record
from frugalnn.errors import ConfigError
from frugalnn.experiments import register
from frugalnn.experiments.quadratic.protocol import PLANS, build, match_width, run_one, time_training_steps
from frugalnn.experiments.quadratic.report import aggregate, headline, write_report

QUICK = {"models": ("lenet5",), "seeds": 2, "train": {"epochs": 1, "max_steps_per_epoch": 50}}
FULL = {"models": ("lenet5", "resnet20"), "seeds": 3, "train": {}}


def _done(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill: that run is redone
    return runs


@register(
    "quadratic", "efficient quadratic neurons vs linear and prior quadratic forms at equal parameters", 60
)
def run(
    out_dir: Path,
    quick: bool,
    seed: int = 0,
    models: tuple[str, ...] | None = None,
    seeds: int | None = None,
    forms: tuple[str, ...] | None = None,
    train: dict[str, Any] | None = None,
    report_only: bool = False,
) -> list[dict[str, Any]]:
    """Train every (model, form, seed) not yet in ``out_dir/runs.jsonl`` (``report_only``: none), then
    write the table, plot and record over the runs there. -> headline rows."""
    settings = QUICK if quick else FULL
    models = tuple(models or settings["models"])
    n_seeds = int(seeds or settings["seeds"])
    overrides = {**settings["train"], **(train or {})}
    unknown = [m for m in models if m not in PLANS]
    if unknown or n_seeds < 1:
        raise ConfigError(f"models must be among {', '.join(PLANS)} and seeds >= 1, got {models}, {n_seeds}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "runs.jsonl"
    runs = _done(log)
    data = load_fashion_mnist(seed=0)
    budgets = {}
    for model in models:
        plan = PLANS[model]
        spec = ModelSpec(model, data.num_classes, data.in_channels, data.image_size)
        rows = [r for r in plan.rows if (r.form in forms if forms else not quick or r.lr is None)]
        efficient = next(r for r in plan.rows if r.form == "efficient")
        budget = sum(p.numel() for p in build(plan, efficient, spec)[0].parameters())
        budgets[model] = budget
        todo = [  # seed by seed, so a benchmark cut short still has every form
            (row, seed + s)
            for s in range(n_seeds)
            for row in rows
            if not any(r["model"] == model and r["form"] == row.form and r["seed"] == seed + s for r in runs)
        ]
        widths = {row.form: match_width(plan, row, spec, budget) for row in rows}
        for row, run_seed in tqdm([] if report_only else todo, desc=f"quadratic {model}", mininterval=5.0):
            result = run_one(plan, row, data, run_seed, widths[row.form], overrides)
            runs.append(result)
            with log.open("a") as f:  # one line per finished run: the resume point
                f.write(json.dumps(result) + "\n")
    seeds_used = [seed + s for s in range(n_seeds)]
    chosen = [
        r
        for r in runs
        if r["model"] in PLANS and r["seed"] in seeds_used and (forms is None or r["form"] in forms)
    ]
    speed = {}
    for model in dict.fromkeys(r["model"] for r in chosen):  # every model in the table, timed together
        plan = PLANS[model]
        timed = [
            row for row in plan.rows if any(r["model"] == model and r["form"] == row.form for r in chosen)
        ]
        widths = {
            row.form: next(r["width"] for r in chosen if r["model"] == model and r["form"] == row.form)
            for row in timed
        }
        speed.update({(model, f): v for f, v in time_training_steps(plan, timed, data, widths).items()})
    rows = aggregate(chosen, speed)
    heads = headline(rows)
    tag = "quadratic-quick" if quick else "quadratic"
    record = make_record(
        tag,
        config={"models": models, "seeds": seeds_used, "train_overrides": overrides, "budgets": budgets,
                "plans": {m: repr(PLANS[m]) for m in models}},
        seed=seed,
        data=data.identity,
        results={"rows": rows, "headline": heads, "runs": chosen},
        note="training images/s measured with 1 torch thread on a shared 2-core machine",
    )  # fmt: skip
    write_record(out_dir / f"{tag}.json", record)
    atomic_write_text(out_dir / f"{tag}.md", write_report(out_dir, tag, rows, heads, quick))
    return heads


def cost_only(out_dir: Path, model: str) -> list[dict[str, Any]]:
    """Parameters, MACs and timed training images/s of every row of ``model``'s plan, no training:
    the cost side of the comparison when the CPU budget leaves no time to train (``<model>-cost.*``)."""
    if model not in PLANS:
        raise ConfigError(f"model must be one of {', '.join(PLANS)}, got {model!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_fashion_mnist(seed=0)
    plan = PLANS[model]
    spec = ModelSpec(model, data.num_classes, data.in_channels, data.image_size)
    efficient = next(r for r in plan.rows if r.form == "efficient")
    budget = sum(p.numel() for p in build(plan, efficient, spec)[0].parameters())
    rows_plan = [r for r in plan.rows if r.lr is None]
    widths = {r.form: match_width(plan, r, spec, budget) for r in rows_plan}
    speed = time_training_steps(plan, rows_plan, data, widths)
    rows = []
    for r in rows_plan:
        net = build(plan, r, spec, widths[r.form])[0]
        rows.append({"model": model, "form": r.form, "width": widths[r.form],
                     "params": sum(p.numel() for p in net.parameters()),
                     "macs": count_macs(net, data.x_test[:1]), "train_img_s": speed[r.form]})  # fmt: skip
    base = rows[0]
    for row in rows:
        row["extra_params_pct"] = 100 * (row["params"] / base["params"] - 1)
        row["extra_macs_pct"] = 100 * (row["macs"] / base["macs"] - 1)
        row["speed_vs_linear"] = row["train_img_s"] / base["train_img_s"]
    record = make_record(f"{model}-cost", config={"plan": repr(plan), "budget": budget}, seed=0,
                         data=data.identity, results={"rows": rows},
                         note="no training; training images/s timed with 1 torch thread on a shared 2-core machine")  # fmt: skip
    write_record(out_dir / f"{model}-cost.json", record)
    atomic_write_text(
        out_dir / f"{model}-cost.md",
        f"# {model}: cost of each form (no training)\n\n" + markdown_table(rows, digits=4),
    )
    return rows
