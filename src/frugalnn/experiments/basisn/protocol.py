"""The BasisN protocol: fine-tune zoo CNNs into basis networks; accuracy, cycles and EDP vs reprogramming.

For each model: the plain network fine-tuned for the same steps with the same loop (the float control:
accuracy and seconds per step); for each coefficient bit width: ``to_basisn`` (decomposition + training),
test accuracy, mean / worst accuracy over analog chips (variation on the basis conductances), and for
each crossbar budget the cost per inference (hw.basis_cost) against reprogramming the same crossbars
(hw.crossbar_cost), both from one CrossbarConfig. Every trained run is stored as JSON under
``runs/`` and skipped when present, so a killed run resumes per row.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.io import atomic_write_json
from frugalnn.core.measure import accuracy
from frugalnn.core.report import line_plot, make_record, markdown_table, write_markdown, write_record
from frugalnn.core.zoo import load_pretrained
from frugalnn.methods.basisn import BasisNConfig, plain_finetune, to_basisn
from frugalnn.methods.basisn.analog import analog_accuracy
from frugalnn.methods.basisn.cost import basisn_cost

FULL = {"models": ("resnet20", "vgg-small"), "coef_bits": (4, 8, 2), "budgets": (1, 2, 4, 16),
        "crossbar_size": 128, "n_basis": None, "steps": 500, "batch_size": 128, "lr": 5e-4, "group_reg": 0.1,
        "test_images": 10000, "analog_images": 1000, "sigma": 0.1, "draws": 5}  # fmt: skip
QUICK = {**FULL, "models": ("lenet5",), "coef_bits": (4,), "budgets": (1, 4), "steps": 300,
         "analog_images": 500, "draws": 3}  # fmt: skip
COLUMNS = ("model", "crossbars", "crossbar_size", "coef_bits", "n_basis", "acc", "acc_float", "acc_zoo",
           "cycles", "cycles_reprogram", "cycles_ratio", "edp", "edp_reprogram", "edp_ratio",
           "energy_ratio", "crossbars_used", "active_group_share", "analog_mean", "analog_min")  # fmt: skip


def _cached(path: Path, fn: Any) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    result = fn()
    atomic_write_json(path, result)
    return result


def run_protocol(
    out_dir: Path, quick: bool, seed: int, progress: bool = True, **options: Any
) -> list[dict[str, Any]]:
    s = {**(QUICK if quick else FULL), **options}
    data = load_fashion_mnist(seed=0)
    xt, yt = data.x_test[: s["test_images"]], data.y_test[: s["test_images"]]
    xa, ya = data.x_test[: s["analog_images"]], data.y_test[: s["analog_images"]]
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    runs: dict[str, Any] = {}
    zoo = {name: load_pretrained(name)[0] for name in s["models"]}
    base = dict(crossbar_size=s["crossbar_size"], n_basis=s["n_basis"], steps=s["steps"], lr=s["lr"],
                batch_size=s["batch_size"], group_reg=s["group_reg"], seed=seed, crossbars=max(s["budgets"]))  # fmt: skip

    def plain(name: str) -> dict[str, Any]:
        model = copy.deepcopy(zoo[name])
        train = plain_finetune(model, data, BasisNConfig(**base), progress=progress)
        return {"acc_float": accuracy(model, xt, yt), "acc_zoo": accuracy(zoo[name], xt, yt), "train": train}

    def basis_run(name: str, config: BasisNConfig) -> dict[str, Any]:
        model, record = to_basisn(zoo[name], config, data=data, progress=progress)
        xbar = config.crossbar_config(variation_sigma=s["sigma"])
        record["acc"] = accuracy(model, xt, yt)
        record["analog"] = analog_accuracy(model, xa, ya, xbar, s["draws"], seed=seed, progress=progress)
        need = -(-config.resolved_n_basis() // config.basis_per_crossbar)
        record["cost"] = {str(b): basis_cost_of(model, config, xt[:1], b) for b in s["budgets"] if b >= need}
        return record

    # bit widths outermost: the headline setting (first in the list) is done for every model first
    for bits in s["coef_bits"]:
        for name in s["models"]:
            control = _cached(runs_dir / f"{name}-plain-s{seed}.json", lambda name=name: plain(name))
            runs[f"{name}-plain"] = control
            config = BasisNConfig(**base, coef_bits=bits).validate()
            tag = f"{name}-b{bits}-n{config.resolved_n_basis()}-s{seed}"
            rec = _cached(runs_dir / f"{tag}.json", lambda name=name, config=config: basis_run(name, config))
            runs[tag] = {k: v for k, v in rec.items() if k != "cost"}
            rows += [_row(name, int(b), s, bits, rec, control, cost) for b, cost in rec["cost"].items()]
            _write(out_dir, rows, runs, _headline(rows, s), s, seed, data.identity, quick)  # partial results
    return _headline(rows, s)


def basis_cost_of(model: Any, config: BasisNConfig, example: Any, budget: int) -> dict[str, Any]:
    return basisn_cost(model, config, example, n_crossbars=budget)


def _row(name: str, budget: int, s: dict, bits: int, rec: dict, control: dict, cost: dict) -> dict[str, Any]:
    ours, rep = cost["basisn"], cost["reprogram"]
    return {
        "model": name, "crossbars": budget, "crossbar_size": s["crossbar_size"], "coef_bits": bits,
        "n_basis": rec["n_basis"], "acc": rec["acc"], "acc_float": control["acc_float"],
        "acc_zoo": control["acc_zoo"], "cycles": ours["cycles"], "cycles_reprogram": rep["cycles"],
        "cycles_ratio": cost["cycles_ratio"], "edp": ours["edp_pj_ns"], "edp_reprogram": rep["edp_pj_ns"],
        "edp_ratio": cost["edp_ratio"], "energy_ratio": cost["energy_ratio"], "crossbars_used": ours["crossbars_used"],
        "active_group_share": rec.get("train", {}).get("active_group_share", 1.0),
        "analog_mean": rec["analog"]["mean"], "analog_min": rec["analog"]["min"],
        "train_s_per_step": rec.get("train", {}).get("seconds_per_step"),
        "plain_s_per_step": control["train"]["seconds_per_step"],
    }  # fmt: skip


def _headline(rows: list[dict[str, Any]], s: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    bits = 4 if 4 in s["coef_bits"] else s["coef_bits"][0]
    for name in s["models"]:
        sel = [r for r in rows if r["model"] == name and r["coef_bits"] == bits]
        if not sel:
            continue
        worst_edp = max(r["edp_ratio"] for r in sel)
        worst_cyc = max(r["cycles_ratio"] for r in sel)
        loss = 100 * (sel[0]["acc_float"] - sel[0]["acc"])
        time_ratio = sel[0]["train_s_per_step"] / sel[0]["plain_s_per_step"]
        out += [
            {"metric": f"{name} {bits}-bit: worst EDP / reprogramming over budgets {s['budgets']}",
             "ours": worst_edp, "baseline": 1.0, "target": "<= 0.01", "met": worst_edp <= 0.01},
            {"metric": f"{name} {bits}-bit: worst cycles / reprogramming", "ours": worst_cyc, "baseline": 1.0,
             "target": "<= 0.01", "met": worst_cyc <= 0.01},
            {"metric": f"{name} {bits}-bit: accuracy loss vs float fine-tuned (points)", "ours": loss,
             "baseline": 0.0, "target": "<= 1", "met": loss <= 1.0},
            {"metric": f"{name}: training time per step / plain", "ours": time_ratio, "baseline": 1.0,
             "target": "< 1.5", "met": time_ratio < 1.5},
        ]  # fmt: skip
    return out


def _write(out_dir: Path, rows: list, runs: dict, headline: list, s: dict, seed: int, identity: dict,
           quick: bool) -> None:  # fmt: skip
    record = make_record("basisn", config=s, seed=seed, data=identity,
                         results={"rows": rows, "runs": runs, "headline": headline}, quick=quick)  # fmt: skip
    write_record(out_dir / "basisn.json", record)
    text = (
        "# BasisN: global basis on few crossbars vs reprogramming (Fashion-MNIST)\n\n"
        f"{s['steps']} training steps (batch {s['batch_size']}) for the basis networks and the float control; "
        f"analog accuracy over {s['draws']} chips, lognormal σ = {s['sigma']} on the basis cells, "
        f"{s['analog_images']} test images; digital accuracy on {s['test_images']} test images.\n\n"
        + markdown_table(rows, COLUMNS, digits=4)
        + "\n## Headline\n\n"
        + markdown_table(headline)
    )
    write_markdown(out_dir / "basisn.md", text)
    for key, label, fname in (
        ("edp_ratio", "EDP / reprogramming", "edp"),
        ("cycles_ratio", "cycles / reprogramming", "cycles"),
    ):
        series = {}
        for name in s["models"]:
            for bits in s["coef_bits"]:
                sel = sorted(
                    (r for r in rows if r["model"] == name and r["coef_bits"] == bits),
                    key=lambda r: r["crossbars"],
                )
                if sel:
                    series[f"{name} {bits}-bit"] = ([r["crossbars"] for r in sel], [r[key] for r in sel])
        if series:
            line_plot(out_dir / f"basisn_{fname}.png", series, xlabel="crossbars", ylabel=label, logy=True,
                      title=f"BasisN {label} (128x128 crossbars)")  # fmt: skip
    acc_series = {}
    for name in s["models"]:
        sel = {r["coef_bits"]: r for r in rows if r["model"] == name}
        if sel:
            b = sorted(sel)
            acc_series[f"{name} basis"] = (b, [sel[k]["acc"] for k in b])
            acc_series[f"{name} float"] = (b, [sel[k]["acc_float"] for k in b])
            acc_series[f"{name} analog σ={s['sigma']} (mean)"] = (b, [sel[k]["analog_mean"] for k in b])
    if acc_series:
        line_plot(out_dir / "basisn_accuracy.png", acc_series, xlabel="coefficient bits", ylabel="test accuracy",
                  title="BasisN accuracy vs coefficient bits")  # fmt: skip
