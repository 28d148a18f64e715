"""The PowerPruning protocol: one ``power_prune`` run per (model, K, delay step), each saved as it
finishes (a killed run resumes at the next one), then the table, the plots and the cross-check.

Each run yields rows with and without voltage scaling (the record holds the power at nominal and at
the chosen Vdd). K = 256 without the delay step restricts nothing: it is the int8 baseline itself.

quick: LeNet-5, K in {256, 16}, short characterisation streams, 60 retraining steps, 2,000 test images.
full:  LeNet-5 and ResNet-20, K in {256, 16, 32, 64, 8} (in this order); retraining 300 (LeNet-5) /
       100 (ResNet-20) SGD steps at lr 0.01; ResNet-20 accuracies on the first 2,000 test images (CPU time).
The cross-check runs first, and the report is rewritten after every model, so a killed run leaves one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from frugalnn.core.io import atomic_write_json

FULL_KEEPS = (256, 16, 32, 64, 8)


def settings(quick: bool, seed: int, **options: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "models": ["lenet5"] if quick else ["lenet5", "resnet20"],
        "keeps": [256, 16] if quick else list(FULL_KEEPS),
        "delay_steps": [False, True],
        "overrides": {"seed": seed, "delay_target": 0.8, "lr": 0.01},
        "per_model": {
            "lenet5": {"finetune_steps": 60 if quick else 300, "test_images": 2000 if quick else None},
            "resnet20": {"finetune_steps": 100, "test_images": 2000},
        },
        "crosscheck": {"model": "lenet5", "layer": "features.3", "sites": 16 if quick else 48},
        # runs again with a longer retraining: does the accuracy loss of a K come from the retraining
        # budget? (model -> the Ks, with the delay step, and the steps)
        "longer": {} if quick else {"resnet20": {"keeps": [16, 32], "finetune_steps": 300}},
    }
    if quick:
        s["overrides"] |= {"transitions": 4096, "timed_transitions": 256, "delay_transitions": 1024}
    s["user"] = {}
    for key, value in options.items():
        if key in ("models", "keeps", "delay_steps"):
            s[key] = list(value)
        elif key == "longer":
            s["longer"] = dict(value)
        elif key == "crosscheck_sites":
            s["crosscheck"]["sites"] = int(value)
        elif value is not None:
            s["user"][key] = value  # PowerPruningConfig fields: win over the per-model settings
    return s


def _run_one(
    model_name: str, keep: int, delay_step: bool, s: dict, out_dir: Path, data, steps: int | None = None
) -> dict:
    """One power_prune run, from its saved record when a previous (killed) run finished it; ``steps``
    overrides the retraining steps (a run of its own, saved under its own name)."""
    from frugalnn.core.zoo import load_pretrained
    from frugalnn.methods.power_pruning import PowerPruningConfig, power_prune

    name = f"{model_name}_k{keep}_{'delay' if delay_step else 'nodelay'}" + (
        f"_steps{steps}" if steps else ""
    )
    path = out_dir / "runs" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    fields = s["overrides"] | s["per_model"].get(model_name, {}) | s["user"]
    if steps:
        fields |= {"finetune_steps": steps}
    fields |= {"keep": keep, "delay_step": delay_step, "voltage_scaling": True}
    fields.setdefault("cache_dir", str(out_dir / "cache"))
    config = PowerPruningConfig(**fields)
    model, _, _ = load_pretrained(model_name)
    _, record = power_prune(model, config, data)
    record["model"] = model_name
    atomic_write_json(path, record)
    return record


def rows_of(record: dict) -> list[dict]:
    sel = record["selection"]
    out = []
    for scaled in (False, True):
        out.append(
            {
                "model": record["model"],
                "keep": record["config"]["keep"],
                "delay_step": record["config"]["delay_step"],
                "retrain_steps": record["config"]["finetune_steps"],
                "voltage_scaling": scaled,
                "vdd": record["voltage"]["vdd_v"] if scaled else record["voltage_model"]["nominal_v"],
                "power_reduction": record["power_reduction_scaled" if scaled else "power_reduction_nominal"],
                "acc": record["accuracy"],
                "acc_loss_pt": record["accuracy_loss_pt"],
                "weights": len(sel["weight_codes"]),
                "activations": len(sel["activation_codes"]),
                "max_delay_ns": sel["max_delay_ns"],
            }
        )
    return out


def run_protocol(out_dir: Path, quick: bool, seed: int, **options: Any) -> list[dict]:
    from frugalnn.core.data import load_fashion_mnist
    from frugalnn.experiments.power_pruning.report import crosscheck

    s = settings(quick, seed, **options)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_fashion_mnist(seed=0)
    records: list[dict] = []
    started = time.perf_counter()
    check = crosscheck(s, out_dir, data, quick)
    heads: list[dict] = []
    longer = s.get("longer", {})
    for model_name in s["models"]:
        runs = [(keep, delay_step, None) for keep in s["keeps"] for delay_step in s["delay_steps"]]
        if model_name in longer:
            runs += [
                (keep, True, longer[model_name]["finetune_steps"]) for keep in longer[model_name]["keeps"]
            ]
        for keep, delay_step, steps in runs:
            rec = _run_one(model_name, keep, delay_step, s, out_dir, data, steps)
            records.append(rec)
            r = rows_of(rec)[-1]
            print(
                f"{model_name} K={keep} delay_step={delay_step} steps={r['retrain_steps']}: acc {r['acc']:.4f} "
                f"(loss {r['acc_loss_pt']:.2f} pt), power -{100 * r['power_reduction']:.1f}% at {r['vdd']:.2f} V",
                flush=True,
            )
            heads = _write(out_dir, s, seed, data, records, check, time.perf_counter() - started, quick)
    return heads


def _write(out_dir: Path, s: dict, seed: int, data, records: list, check: list, seconds: float, quick: bool):
    """Table, plots and record of the runs so far (rewritten after every run); returns the headline."""
    from frugalnn.core.report import make_record, write_record
    from frugalnn.experiments.power_pruning.report import headline, write_report

    rows = [row for rec in records for row in rows_of(rec)]
    write_report(out_dir, rows, records, check)
    heads = headline(rows, records, check)
    write_record(
        out_dir / "power_pruning.json",
        make_record(
            "power-pruning",
            config=dict(s),
            seed=seed,
            data=data.identity,
            results={
                "rows": rows,
                "crosscheck": check,
                "headline": heads,
                "runs": [_brief(r) for r in records],
            },
            seconds=seconds,
            quick=quick,
        ),
    )
    return heads


def _brief(record: dict) -> dict:
    keys = ("model", "selection", "voltage", "clock_ns", "seconds", "characterisations", "weight_code_use")
    return {k: record.get(k) for k in keys} | {"layers": record["layers"], "config": record["config"]}
