"""The CorrectNet protocol: σ sweep × {plain, Lipschitz only, CorrectNet, compensation everywhere}.

Per model (zoo baselines, Fashion-MNIST): the Lipschitz-regularised fine-tune is made once; for every σ
the placement search and the compensation training run on noisy chips of that σ; every variant is
scored over ``draws`` chips (mean, 5th percentile, worst). Rows are appended to ``rows.jsonl`` as they
finish, so a killed run resumes where it stopped; models are cached under ``models/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from frugalnn.core.io import atomic_write_text

VARIANTS = ("plain", "lipschitz", "correctnet", "comp-all")
FIELDS = ("model", "sigma", "variant", "draws", "acc_mean", "acc_p5", "acc_worst", "clean_acc",
          "overhead_macs_pct", "overhead_params_pct")  # fmt: skip


def settings(quick: bool, **options: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "models": ("lenet5", "vgg-small"),
        # per model, the collapse end first (its rows are the headline); VGG-small, 70x LeNet-5's MACs,
        # at its collapse σ, 0.5 and 0.3 only, on 200 images per chip: about 80 CPU minutes in all
        "sigmas": {"lenet5": (1.1, 0.9, 0.5, 0.3, 0.1, 0.4, 0.2), "vgg-small": (0.9, 0.5, 0.3)},
        "draws": {"lenet5": 100, "vgg-small": 100},
        "images": {"lenet5": 1000, "vgg-small": 200},
        "collapse_fraction": 0.3,
        "timing_models": ("vgg-small",),
        "timing_images": 10000,
        "timing_draws": 2,
        "method": {"lipschitz_steps": 300, "comp_steps": 200, "search_iters": 8, "search_images": 1000},
        "method_per_model": {"vgg-small": {"comp_steps": 100, "search_iters": 4, "search_images": 300}},
    }
    if quick:
        s.update(models=("lenet5",), sigmas=(0.5, 0.9), draws={"lenet5": 10}, images=500, timing_models=(),
                 method={"lipschitz_steps": 40, "comp_steps": 40, "search_iters": 3, "search_images": 300,
                         "search_samples": 3, "search_chips": 2, "train_chips": 2})  # fmt: skip
    for key, value in options.items():
        if value is not None:
            s[key] = value
    return s


def per_model(value: Any, name: str) -> Any:
    """A setting given per model (a dict keyed by model name) or for all models (anything else)."""
    return value[name] if isinstance(value, dict) else value


def method_config(s: dict[str, Any], name: str, seed: int) -> Any:
    """The CorrectNetConfig of model ``name``: the shared method settings, then that model's own."""
    from frugalnn.methods.correctnet import CorrectNetConfig

    return CorrectNetConfig(
        seed=seed, **{**s["method"], **s.get("method_per_model", {}).get(name, {})}
    ).validate()


def lipschitz_tuned(
    model: Any, cfg: Any, data: Any, seed: int, weight: float | None = None, progress: bool = True
) -> tuple[Any, dict]:
    """A copy of ``model`` fine-tuned on ``data``'s training split with the Lipschitz regulariser on its
    crossbar layers (``cfg``'s steps, lr and batch; ``weight``: λ, default ``cfg.lipschitz_weight``)."""
    import copy

    from frugalnn.methods.correctnet.compensation import mappable_layers
    from frugalnn.methods.correctnet.lipschitz import lipschitz_finetune

    tuned = copy.deepcopy(model)
    layers = {n: tuned.get_submodule(n) for n in mappable_layers(tuned)}
    rec = lipschitz_finetune(
        tuned, layers, data.x_train, data.y_train, beta=None, seed=seed, device=torch.device("cpu"),
        weight=cfg.lipschitz_weight if weight is None else weight, steps=cfg.lipschitz_steps,
        lr=cfg.lipschitz_lr, batch_size=cfg.batch_size, progress=progress,
    )  # fmt: skip
    return tuned.cpu().eval(), rec


def _load_rows(path: Path) -> dict[tuple[str, float, str], dict[str, Any]]:
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[(r["model"], r["sigma"], r["variant"])] = r
    return rows


def _append(path: Path, row: dict[str, Any], rows: dict) -> None:
    rows[(row["model"], row["sigma"], row["variant"])] = row
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows.values()))


def _cached_model(folder: Path, make: Any, spec: Any, transforms: Any = None) -> tuple[Any, dict]:
    """Load ``folder`` if a previous run saved it, else ``make()`` and save it."""
    from frugalnn.core.checkpoint import load_checkpoint, save_checkpoint

    if (folder / "model.safetensors").exists():
        model, _, meta = load_checkpoint(folder)
        return model, meta.get("record", {})
    model, record = make()
    meta = {"record": record, **({"transforms": [transforms(model)]} if transforms else {})}
    save_checkpoint(folder, model, spec, meta)
    return model, record


def run_protocol(out_dir: Path, quick: bool, seed: int, **options: Any) -> list[dict[str, Any]]:
    from frugalnn.core.data import load_fashion_mnist
    from frugalnn.core.measure import accuracy
    from frugalnn.core.report import make_record, write_record
    from frugalnn.core.zoo import load_pretrained
    from frugalnn.experiments.correctnet.report import headline, write_report
    from frugalnn.hw.crossbar_mc import monte_carlo_accuracy
    from frugalnn.methods.correctnet import correct, overhead, transform_entry

    torch.manual_seed(seed)
    s = settings(quick, **options)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows_path = out_dir / "rows.jsonl"
    rows = _load_rows(rows_path)
    data = load_fashion_mnist(seed=0)
    configs = {name: method_config(s, name, seed) for name in s["models"]}
    if s["timing_models"] and not s.get("report_only") and not (out_dir / "mc_cost.json").exists():
        cost = {
            m: mc_cost(m, data.x_test[: s["timing_images"]], s["timing_draws"]) for m in s["timing_models"]
        }
        atomic_write_text(out_dir / "mc_cost.json", json.dumps(cost, indent=2))
    for name in s["models"] if not s.get("report_only") else ():  # report_only: table and plot of the rows
        model, spec, _ = load_pretrained(name)
        model.eval()
        base_cfg = configs[name]
        n_img = int(per_model(s["images"], name))
        x, y = data.x_test[:n_img], data.y_test[:n_img]
        clean = accuracy(model, x, y)
        draws = int(per_model(s["draws"], name))

        tuned, _ = _cached_model(
            out_dir / "models" / f"{name}-lipschitz",
            lambda model=model, cfg=base_cfg: lipschitz_tuned(model, cfg, data, seed),
            spec,
        )
        tuned.eval()
        for sigma in per_model(s["sigmas"], name):
            cfg = replace(base_cfg, sigma=sigma, lipschitz_steps=0)
            for variant in VARIANTS:
                key = (name, sigma, variant)
                if key in rows:
                    continue
                t0 = time.perf_counter()
                if variant == "plain":
                    net, ovh = model, {"overhead_macs_pct": 0.0, "overhead_params_pct": 0.0}
                elif variant == "lipschitz":
                    net, ovh = tuned, {"overhead_macs_pct": 0.0, "overhead_params_pct": 0.0}
                else:
                    vcfg = replace(cfg, placement="search" if variant == "correctnet" else "all")
                    net, rec = _cached_model(
                        out_dir / "models" / f"{name}-{variant}-s{sigma}",
                        lambda vcfg=vcfg, tuned=tuned: correct(tuned, vcfg, data),
                        spec, lambda m, vcfg=vcfg: transform_entry(m, vcfg),
                    )  # fmt: skip
                    from frugalnn.methods.correctnet import compensations

                    ovh = overhead(net, list(compensations(net)), cfg.comp_rank, x[:1])
                mc = monte_carlo_accuracy(
                    net.eval(), x, y, draws, cfg.crossbar(), torch.Generator().manual_seed(seed + 1),
                    batch_size=250, progress=True,
                )  # fmt: skip
                row = {"model": name, "sigma": sigma, "variant": variant, "draws": draws,
                       "acc_mean": mc["mean"], "acc_p5": mc["p5"], "acc_worst": mc["min"], "clean_acc": clean,
                       "overhead_macs_pct": ovh["overhead_macs_pct"],
                       "overhead_params_pct": ovh["overhead_params_pct"],
                       "placement": sorted(_placement(net)), "per_draw": mc["per_draw"],
                       "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
                _append(rows_path, row, rows)
    timings = (
        json.loads((out_dir / "mc_cost.json").read_text()) if (out_dir / "mc_cost.json").exists() else {}
    )
    ordered = [
        r
        for r in rows.values()
        if r["model"] in s["models"] and r["sigma"] in per_model(s["sigmas"], r["model"])
    ]
    ordered.sort(key=lambda r: (r["model"], r["sigma"], VARIANTS.index(r["variant"])))
    record = make_record("correctnet", config={"settings": s, "method": {m: c.to_dict() for m, c in configs.items()}, "quick": quick},
                         seed=seed, data=data.identity, results={"rows": ordered, "timings": timings})  # fmt: skip
    write_record(out_dir / "correctnet.json", record)
    write_report(out_dir, ordered, s, timings)
    return headline(ordered, s) + [
        {"metric": f"{m}: one Monte-Carlo chip / digital forward ({t['images']} images)",
         "ours": min(t["ratio_one_chip"], t["ratio_batched"]), "baseline": None, "target": "<= 3",
         "met": min(t["ratio_one_chip"], t["ratio_batched"]) <= 3} for m, t in timings.items()
    ]  # fmt: skip


def mc_cost(name: str, x: torch.Tensor, draws: int) -> dict[str, float]:
    """Seconds of the digital forward and of ``draws`` chips (one batch) over ``x``, 1 chip per draw."""
    from frugalnn.core.measure import predict
    from frugalnn.core.zoo import load_pretrained
    from frugalnn.hw.crossbar import CrossbarConfig
    from frugalnn.hw.crossbar_mc import monte_carlo_accuracy

    model, _, _ = load_pretrained(name)
    model.eval()
    y = torch.zeros(len(x), dtype=torch.int64)
    t0 = time.perf_counter()
    predict(model, x, 250)
    digital = time.perf_counter() - t0
    cfg = CrossbarConfig(variation_sigma=0.3)
    t0 = time.perf_counter()
    monte_carlo_accuracy(model, x, y, 1, cfg, batch_size=250, chips_per_pass=1)
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    monte_carlo_accuracy(model, x, y, draws, cfg, batch_size=250, chips_per_pass=draws)
    batched = (time.perf_counter() - t0) / draws
    return {"images": len(x), "digital_s": digital, "one_chip_s": one, "batched_per_chip_s": batched,
            "ratio_one_chip": one / digital, "ratio_batched": batched / digital,
            "projected_100_draws_min": 100 * min(one, batched) / 60}  # fmt: skip


def _placement(net: Any) -> list[str]:
    from frugalnn.methods.correctnet import compensations

    return list(compensations(net))
