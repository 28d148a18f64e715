"""Class-exclusion early exit vs the confidence baseline vs no exit (AICAS 2024, arXiv 2309.13443).

For each Fashion-MNIST zoo model: heads of both kinds at the same positions are trained on the frozen
backbone (one cached feature pass), the per-exit β / thresholds are searched on the validation split
for a sweep of tolerances, and every setting is scored on the test split (accuracy, MACs per image at
batch size 1 with heads included, exit histogram). At the main tolerance the real skipping forward is
timed against the plain backbone (1 thread, batches of 64, alternating repeats) and checked to give
exactly the simulated answers; the batch-size-1 path is timed too.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from frugalnn.core.data import ImageData, load_fashion_mnist
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.core.report import (
    bar_plot,
    line_plot,
    make_record,
    markdown_table,
    write_markdown,
    write_record,
)
from frugalnn.core.train import TrainConfig, train
from frugalnn.core.zoo import load_pretrained, zoo_path
from frugalnn.experiments import register
from frugalnn.methods.early_exit import (
    Config,
    Outputs,
    attach_exits,
    infer_single,
    pooled_features,
    prepare_cpu_inference,
    search_betas,
    search_thresholds,
    simulate,
    skipping_forward,
    summarize,
    train_heads,
)

TOLERANCES = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03)
MAIN_TOLERANCE = 0.005  # the target: at most 0.5 point accuracy loss
BATCH = 64  # fastest batch for the no-exit networks too: activations stay in cache
POS_WEIGHTS = (1.0, 9.0, 100.0)  # ablation around the paper's 4·(K−1) = 36
TRAIN_SUBSET = 20000  # images the heads train on (linear heads on pooled features: plenty)
TIMING_IMAGES = 2000  # test images the wall-clock comparison runs on
# method -> (heads, exclusion rule): the paper's ratio rule, its absolute-threshold variant, the baseline
METHODS = {
    "exclusion": ("exclusion", "ratio"),
    "exclusion-absolute": ("exclusion", "absolute"),
    "confidence": ("confidence", "ratio"),
}


def _backbone(name: str, data: ImageData, quick: bool, seed: int) -> tuple[nn.Module, str]:
    """The zoo baseline when it is installed; otherwise a briefly trained stand-in (said so in the record)."""
    if zoo_path(name) is not None:
        model, _, _ = load_pretrained(name)
        return model.eval(), "zoo"
    spec = ModelSpec(name, data.num_classes, data.in_channels, data.image_size)
    model = build_model(spec)
    steps = 80 if quick else 2000
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, seed=seed, max_steps_per_epoch=steps)
    train(model, data, cfg, evaluate_test=False)
    return model.eval(), f"trained here: 1 epoch of {steps} steps (no zoo baseline installed)"


@torch.no_grad()
def _outputs(models: dict[str, Any], cache: list[torch.Tensor], y: torch.Tensor) -> dict[str, Outputs]:
    """Outputs of every head kind from one cached backbone pass (pooled features + final logits)."""
    *feats, final = cache
    with torch.no_grad():
        return {
            mode: Outputs([h.fc(f) for h, f in zip(m.heads, feats)], final, y) for mode, m in models.items()
        }


def _matched_macs(curve: list[tuple[float, float]], accuracy: float) -> float | None:
    """MACs the other method needs for ``accuracy``: the cheapest of its points at least as accurate,
    linearly interpolated along its Pareto front; None when it never reaches that accuracy."""
    pts = sorted(curve, key=lambda p: p[1])  # by MACs
    front: list[tuple[float, float]] = []
    for acc, macs in pts:
        if not front or acc > front[-1][0]:
            front.append((acc, macs))
    if not front or accuracy > front[-1][0]:
        return None
    if accuracy <= front[0][0]:
        return front[0][1]
    for (a0, m0), (a1, m1) in zip(front, front[1:]):
        if a0 <= accuracy <= a1:
            return m0 + (m1 - m0) * (accuracy - a0) / max(a1 - a0, 1e-12)
    return front[-1][1]


def _time_alternating(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, repeats interleaved so load from other processes
    hits all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up
    for _ in range(repeats):
        for k, f in fns.items():
            start = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}


def study_model(
    name: str,
    data: ImageData,
    quick: bool,
    seed: int,
    head_pool: int,
    exits: tuple[str, ...] | None,
    label: str,
    timing: bool = True,
) -> dict[str, Any]:
    torch.manual_seed(seed)
    backbone, source = _backbone(name, data, quick, seed)
    shape = (data.in_channels, data.image_size, data.image_size)
    subset = 8000 if quick else TRAIN_SUBSET
    common = dict(exits=exits, head_pool=head_pool, input_shape=shape, seed=seed, head_epochs=30)
    models = {
        mode: attach_exits(backbone, Config(mode=mode, **common))[0] for mode in ("exclusion", "confidence")
    }
    ee = models["exclusion"]
    gen = torch.Generator().manual_seed(seed)
    pick = (
        torch.randperm(len(data.x_train), generator=gen)[:subset]
        if subset
        else torch.arange(len(data.x_train))
    )
    heads_data = dataclasses.replace(data, x_train=data.x_train[pick], y_train=data.y_train[pick])
    started = time.perf_counter()
    feats = pooled_features(ee, heads_data.x_train, progress=True)  # same positions + pool: shared cache
    hist = {mode: train_heads(m, heads_data, progress=True, feats=feats) for mode, m in models.items()}
    head_seconds = time.perf_counter() - started
    x_test, y_test = (data.x_test[:2000], data.y_test[:2000]) if quick else (data.x_test, data.y_test)
    x_val, y_val = (data.x_val[:2500], data.y_val[:2500]) if quick else (data.x_val, data.y_val)
    cache_val = pooled_features(ee, x_val, progress=True, final=True)  # the heads share the backbone:
    cache_test = pooled_features(ee, x_test, progress=True, final=True)  # one pass serves every head kind
    val, test = _outputs(models, cache_val, y_val), _outputs(models, cache_test, y_test)
    full_macs = sum(ee.segment_macs)
    base_acc = float((test["exclusion"].final_logits.argmax(1) == y_test).double().mean())
    rows: list[dict[str, Any]] = []
    settings: dict[tuple[str, float], list[float]] = {}
    for tol in TOLERANCES[:4] if quick else TOLERANCES:
        for method, (mode, rule) in METHODS.items():
            m = models[mode]
            m.config.rule = rule  # the absolute-threshold variant reuses the same sigmoid heads
            found = (
                search_betas(m, val[mode], tol)
                if mode == "exclusion"
                else search_thresholds(m, val[mode], tol)
            )
            res = summarize(m, simulate(m, test[mode], found.values), y_test)
            m.config.rule = "ratio"
            settings[(method, tol)] = found.values
            rows.append(
                {
                    "model": label,
                    "method": method,
                    "tolerance": tol,
                    "values": [round(v, 4) for v in found.values],
                    "val_accuracy": found.accuracy,
                    "test_accuracy": res["accuracy"],
                    "accuracy_loss_pt": 100 * (base_acc - res["accuracy"]),
                    "macs_per_image": res["macs_per_image"],
                    "mac_reduction": res["mac_reduction"],
                    "exit_share": res["exit_share"],
                }
            )
    curve = {
        method: [(r["test_accuracy"], r["macs_per_image"]) for r in rows if r["method"] == method]
        for method in METHODS
    }
    for r in rows:  # MACs the other method needs for the same test accuracy
        other = "exclusion" if r["method"] == "confidence" else "confidence"
        r["other_method_macs_at_same_accuracy"] = _matched_macs(curve[other], r["test_accuracy"])
    main = {
        method: next(r for r in rows if r["method"] == method and r["tolerance"] == MAIN_TOLERANCE)
        for method in METHODS
    }
    out: dict[str, Any] = {
        "model": label,
        "backbone": name,
        "backbone_source": source,
        "exits": list(ee.exit_names),
        "head_pool": head_pool,
        "describe": ee.describe(),
        "no_exit_accuracy": base_acc,
        "no_exit_macs": full_macs,
        "head_training": {
            k: {kk: v[kk] for kk in ("head_val_accuracy", "pos_weight", "train_samples")}
            for k, v in hist.items()
        },
        "head_seconds": head_seconds,
        "sweep": rows,
        "main": main,
        "test_images": len(y_test),
    }
    if timing:
        out.update(_timing(models, settings, backbone, test, x_test, y_test, quick))
    out["targets"] = _targets(out)
    if not quick:  # ablation: the BCE positive-class weight (simulation only, same cached features)
        out["pos_weight_ablation"] = []
        for pw in POS_WEIGHTS:
            m2 = attach_exits(backbone, Config(mode="exclusion", pos_weight=pw, **common))[0]
            train_heads(m2, heads_data, progress=False, feats=feats)
            v2 = _outputs({"exclusion": m2}, cache_val, y_val)["exclusion"]
            t2 = _outputs({"exclusion": m2}, cache_test, y_test)["exclusion"]
            found = search_betas(m2, v2, MAIN_TOLERANCE)
            res = summarize(m2, simulate(m2, t2, found.values), y_test)
            out["pos_weight_ablation"].append(
                {
                    "pos_weight": pw,
                    "betas": found.values,
                    "test_accuracy": res["accuracy"],
                    "mac_reduction": res["mac_reduction"],
                    "macs_per_image": res["macs_per_image"],
                }
            )
    return out


def _targets(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's three targets, judged at the main tolerance."""
    ex, cf = r["main"]["exclusion"], r["main"]["confidence"]
    matched = ex["other_method_macs_at_same_accuracy"]
    out: dict[str, Any] = {
        "mac_reduction": ex["mac_reduction"],
        "accuracy_loss_pt": ex["accuracy_loss_pt"],
        "ge_40pct_fewer_macs_at_le_0.5pt_loss": ex["mac_reduction"] >= 0.40 and ex["accuracy_loss_pt"] <= 0.5,
        "confidence_macs_at_same_accuracy": matched,
        "confidence_macs_at_main_tolerance": cf["macs_per_image"],
        "fewer_macs_than_confidence_at_same_accuracy": matched is not None and ex["macs_per_image"] < matched,
    }
    for variant, t in r.get("throughput", {}).items():
        e = t["exclusion"]
        out[f"{variant}_gain_realised"] = e["gain_realised"]  # (measured − 1) / (promised − 1)
        out[f"{variant}_speedup_ratio"] = e["measured_speedup"] / e["promised_speedup"]  # measured / promised
        out[f"{variant}_ge_60pct_of_promised_gain"] = e["gain_realised"] >= 0.6
    return out


def _timing(
    models: dict,
    settings: dict,
    backbone: nn.Module,
    test: dict,
    x: torch.Tensor,
    y: torch.Tensor,
    quick: bool,
) -> dict:
    """Real skipping forward at the main tolerance: the same answers as the simulation, and its speed,
    both as the eager model is and after ``prepare_cpu_inference`` (BN folded, channels-last) applied
    alike to the backbone and the exit models."""
    ee, conf = models["exclusion"], models["confidence"]
    ee.set_betas(settings[("exclusion", MAIN_TOLERANCE)])
    conf.set_thresholds(settings[("confidence", MAIN_TOLERANCE)])
    for m in (ee, conf, backbone):
        m.eval()
    real = {mode: skipping_forward(m, x, BATCH) for mode, m in models.items()}
    values = {"exclusion": ee.betas.tolist(), "confidence": conf.thresholds.tolist()}
    same = {
        mode: bool(torch.equal(real[mode].pred, simulate(m, test[mode], values[mode]).pred))
        for mode, m in models.items()
    }
    # timing runs on the first TIMING_IMAGES test images (accuracies below are on those too)
    n_time = 1000 if quick else TIMING_IMAGES
    x, y = x[:n_time], y[:n_time]
    plain_acc = float((test["exclusion"].final_logits[: len(y)].argmax(1) == y).double().mean())
    full = sum(ee.segment_macs)
    out: dict[str, Any] = {"throughput": {}, "latency_ms_bs1": {}, "skipping_equals_simulation": same}
    n1 = 50 if quick else 300
    for variant in ("eager",) if quick else ("eager", "prepared"):  # quick: keep the demo short
        if variant == "eager":
            bb, ex, cf, xs = backbone, ee, conf, x
        else:
            bb, ex, cf = (prepare_cpu_inference(m, x[:8]) for m in (backbone, ee, conf))
            xs = x.contiguous(memory_format=torch.channels_last)

        def plain(bb: nn.Module = bb, xs: torch.Tensor = xs) -> None:
            with torch.no_grad():
                for i in range(0, len(xs), BATCH):
                    bb(xs[i : i + BATCH])

        secs = _time_alternating(
            {
                "no_exit": plain,
                "exclusion": lambda ex=ex, xs=xs: skipping_forward(ex, xs, BATCH),
                "confidence": lambda cf=cf, xs=xs: skipping_forward(cf, xs, BATCH),
            },
            repeats=2 if quick else 3,
        )
        thr: dict[str, Any] = {"no_exit": {"images_per_s": len(x) / secs["no_exit"], "accuracy": plain_acc}}
        for mode, m in (("exclusion", ex), ("confidence", cf)):
            s = summarize(m, skipping_forward(m, xs, BATCH), y)
            promised = full / s["macs_per_image"]
            measured = secs["no_exit"] / secs[mode]
            thr[mode] = {
                "accuracy_real_forward": s["accuracy"],
                "macs_per_image": s["macs_per_image"],
                "exit_histogram": s["exit_histogram"],
                "images_per_s": len(x) / secs[mode],
                "promised_speedup": promised,
                "measured_speedup": measured,
                # share of the promised gain that shows up in wall time: (measured − 1) / (promised − 1)
                # (undefined when MACs barely fall: below a 5 % promised gain it is reported as NaN)
                "gain_realised": (measured - 1) / (promised - 1) if promised > 1.05 else float("nan"),
            }
        thr.update(threads=torch.get_num_threads(), batch_size=BATCH, images=len(x))
        out["throughput"][variant] = thr
        one = {
            "no_exit": lambda bb=bb, xs=xs: [bb(xs[i : i + 1]) for i in range(n1)],
            "exclusion": lambda ex=ex, xs=xs: [infer_single(ex, xs[i]) for i in range(n1)],
            "confidence": lambda cf=cf, xs=xs: [infer_single(cf, xs[i]) for i in range(n1)],
        }
        with torch.no_grad():
            lat = _time_alternating(one, repeats=2 if quick else 3)
        out["latency_ms_bs1"][variant] = {k: 1000 * v / n1 for k, v in lat.items()}
    return out


def write_report(
    results: list[dict[str, Any]], out_dir: Path, prefix: str, config: dict, seed: int, data_id: dict
) -> dict:
    """JSON records, Markdown tables and the two plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in results:
        write_record(
            out_dir / f"{prefix}_{r['model']}.json",
            make_record(f"early-exit/{r['model']}", config=config, seed=seed, data=data_id, results=r),
        )
    write_record(
        out_dir / f"{prefix}.json",
        make_record("early-exit", config=config, seed=seed, data=data_id, results=results),
    )
    md = ["# Class-exclusion early exit vs confidence exit vs no exit (Fashion-MNIST)\n\n"]
    summary = []
    for r in results:
        ex, cf, t = r["main"]["exclusion"], r["main"]["confidence"], r.get("targets", {})
        summary.append(
            {
                "model": r["model"],
                "no-exit acc": r["no_exit_accuracy"],
                "exclusion acc": ex["test_accuracy"],
                "exclusion MAC cut": ex["mac_reduction"],
                "confidence acc": cf["test_accuracy"],
                "confidence MAC cut": cf["mac_reduction"],
                "confidence MACs at exclusion's acc": ex["other_method_macs_at_same_accuracy"],
                "exclusion MACs": ex["macs_per_image"],
                "gain realised eager": t.get("eager_gain_realised", ""),
                "gain realised prepared": t.get("prepared_gain_realised", ""),
            }
        )
    md.append(f"Test split, tolerance {MAIN_TOLERANCE} on validation; MACs per image include the heads.\n\n")
    md.append(markdown_table(summary, digits=4))
    for r in results:
        md.append(
            f"\n## {r['model']}: exits {', '.join(r['exits'])}, head pool {r['head_pool']}, "
            f"backbone {r['backbone_source']}\n\n"
        )
        md.append(
            f"No exit: test accuracy {r['no_exit_accuracy']:.4f}, {r['no_exit_macs']:,} MACs/image.\n\n"
        )
        cols = [
            "method",
            "tolerance",
            "values",
            "test_accuracy",
            "accuracy_loss_pt",
            "macs_per_image",
            "mac_reduction",
            "other_method_macs_at_same_accuracy",
        ]
        md.append(markdown_table(r["sweep"], cols, digits=4))
        if r.get("pos_weight_ablation"):
            md.append(f"\nClass exclusion with other BCE positive weights (tolerance {MAIN_TOLERANCE}):\n\n")
            md.append(markdown_table(r["pos_weight_ablation"], digits=4))
        for variant, t in r.get("throughput", {}).items():
            lat = r["latency_ms_bs1"][variant]
            trow = [
                {
                    "method": "no exit",
                    "images/s": t["no_exit"]["images_per_s"],
                    "accuracy": t["no_exit"]["accuracy"],
                    "MACs/image": r["no_exit_macs"],
                    "latency bs1 ms": lat["no_exit"],
                }
            ]
            for mode in ("exclusion", "confidence"):
                trow.append(
                    {
                        "method": mode,
                        "images/s": t[mode]["images_per_s"],
                        "accuracy": t[mode]["accuracy_real_forward"],
                        "MACs/image": t[mode]["macs_per_image"],
                        "promised speed-up": t[mode]["promised_speedup"],
                        "measured speed-up": t[mode]["measured_speedup"],
                        "gain realised": t[mode]["gain_realised"],
                        "latency bs1 ms": lat[mode],
                        "exit histogram": t[mode]["exit_histogram"],
                    }
                )
            what = (
                "as trained (eager)"
                if variant == "eager"
                else "BN folded into convs, channels-last (all three)"
            )
            md.append(
                f"\nReal skipping forward at tolerance {MAIN_TOLERANCE}, {what}; {t['images']} test images, "
                f"batch {t['batch_size']}, {t['threads']} thread:\n\n"
            )
            md.append(markdown_table(trow, list(trow[1]), digits=3))
    write_markdown(out_dir / f"{prefix}.md", "".join(md))
    series: dict[str, dict] = {"": {}}  # "": every main model (label = zoo name) in one plot
    for r in results:
        own = series.setdefault(r["model"], {})
        for mode in ("exclusion", "confidence", "no exit") if r["model"] == r["backbone"] else ():
            series[""][f"{r['model']} {mode}"] = None  # filled below
        for mode in METHODS:
            pts = sorted(
                (p["macs_per_image"] / 1e6, 100 * p["test_accuracy"])
                for p in r["sweep"]
                if p["method"] == mode
            )
            own[mode] = ([p[0] for p in pts], [p[1] for p in pts])
        own["no exit"] = ([r["no_exit_macs"] / 1e6], [100 * r["no_exit_accuracy"]])
        for key in [k for k in series[""] if k.startswith(r["model"] + " ")]:
            series[""][key] = own[key[len(r["model"]) + 1 :]]
    for name, lines in series.items():
        if lines:
            line_plot(
                out_dir / (f"{prefix}_acc_vs_macs_{name}.png" if name else f"{prefix}_acc_vs_macs.png"),
                lines,
                xlabel="MACs per image (M, heads included)",
                ylabel="test accuracy (%)",
                title=f"{name or 'VGG-small and ResNet-20'}: accuracy vs MACs across tolerances",
            )
    for r in results:  # one histogram per model: models differ in their number of exits
        values = {m: list(r["main"][m]["exit_share"].values()) for m in METHODS}
        bar_plot(
            out_dir / f"{prefix}_exit_histogram_{r['model']}.png",
            list(r["main"]["exclusion"]["exit_share"]),
            values,
            ylabel="share of test images",
            title=f"{r['model']}: where test images leave (tolerance {MAIN_TOLERANCE})",
        )
    return {"files": sorted(p.name for p in out_dir.glob(f"{prefix}*"))}


def run_study(
    out_dir: Path,
    quick: bool,
    seed: int,
    prefix: str = "early_exit",
    plan: list[tuple] | None = None,
    merge: bool = False,
) -> dict[str, Any]:
    """Run the plan (label, zoo model, head pool, exits); ``merge`` keeps the per-model records of
    other labels already in ``out_dir`` in the combined report (models can be run one at a time)."""
    data = load_fashion_mnist(seed=0)  # the zoo's split: its validation images were never trained on
    if plan is None:
        plan = (
            [("vgg-small", "vgg-small", 4, None)]
            if quick
            else [
                ("vgg-small", "vgg-small", 4, None),
                ("resnet20", "resnet20", 4, None),
            ]
        )
    results: list[dict[str, Any]] = []
    if merge:
        labels = {p[0] for p in plan}
        for f in sorted(Path(out_dir).glob(f"{prefix}_*.json")):
            try:
                res = json.loads(f.read_text()).get("results")
            except (OSError, ValueError):
                continue
            if isinstance(res, dict) and "sweep" in res and res.get("model") not in labels:
                results.append(res)
    for label, name, pool, exits, *rest in plan:  # an optional 5th item: time the real forward (default yes)
        print(f"-- {label}: exits {exits or 'default'}, head pool {pool}", flush=True)
        results.append(
            study_model(name, data, quick, seed, pool, exits, label, timing=rest[0] if rest else True)
        )
        write_report(
            results,
            Path(out_dir),
            prefix,
            {"plan": plan, "quick": quick, "tolerances": TOLERANCES, "main_tolerance": MAIN_TOLERANCE},
            seed,
            data.identity,
        )
    headline = {}
    for r in results:
        m = r["main"]["exclusion"]
        headline[r["model"]] = {
            "mac_reduction": round(m["mac_reduction"], 3),
            "accuracy_loss_pt": round(m["accuracy_loss_pt"], 2),
            "confidence_mac_reduction": round(r["main"]["confidence"]["mac_reduction"], 3),
            "gain_realised": {
                v: round(t["exclusion"]["gain_realised"], 2) for v, t in r.get("throughput", {}).items()
            },
        }
    return headline


@register("early-exit", "class-exclusion early exit vs confidence exit vs no exit on Fashion-MNIST", order=20)
def run(out_dir: Path, quick: bool, seed: int) -> dict[str, Any]:
    return run_study(out_dir, quick, seed)
