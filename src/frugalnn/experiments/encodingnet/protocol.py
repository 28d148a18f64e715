"""The EncodingNet protocol: threshold sweep x models, accuracy and hardware, table + plot + record."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.io import atomic_write_json
from frugalnn.core.quant import quantize
from frugalnn.core.report import make_record, markdown_table, save_figure, write_markdown, write_record
from frugalnn.core.zoo import load_pretrained
from frugalnn.methods.encoding_mac import EncodingConfig, encoded_layers, encodingnet, exact_encoder, search
from frugalnn.methods.encoding_mac.hardware import compare_columns

QUICK = {
    "bits": 4, "sweep": ((0.01, 16, 60), (0.1, 14, 60)), "main": 0.01, "models": ("lenet5",),
    "search": {"outputs": 32, "rows": 64, "mutation_start": 0.05, "mutation_end": 0.01, "psum_bits": 12},
    "finetune": {"lenet5": {"finetune_epochs": 1.0, "max_steps": 20, "eval_images": 1000}},
    "pes": 4, "vectors": 512,
}  # fmt: skip
FULL = {
    "bits": 8, "sweep": ((0.02, 44, 600), (0.05, 36, 300), (0.01, 48, 300), (0.005, 52, 300)), "main": 0.02,
    "models": ("lenet5", "resnet20"), "main_only": (), "search": {"preset": "ours"},
    "finetune": {
        "lenet5": {"finetune_epochs": 1.0, "max_steps": 0, "eval_images": None},
        "resnet20": {"finetune_epochs": 1.0, "max_steps": 40, "eval_images": 2000},
    },
    "pes": 16, "vectors": 1024,
}  # fmt: skip
ROW_KEYS = (
    "model", "bits", "threshold", "max_re", "area_encoded", "area_multiplier", "energy_encoded_pj",
    "energy_multiplier_pj", "acc", "acc_exact",
)  # fmt: skip


def search_config(settings: dict, threshold: float, kept: int, generations: int, seed: int) -> EncodingConfig:
    s = dict(settings["search"])
    preset = s.pop("preset", None)
    fields = {"bits": settings["bits"], "threshold": threshold, "kept_bits": kept, "generations": generations}
    fields |= {"seed": seed, **s}
    return (EncodingConfig.preset(preset, **fields) if preset else EncodingConfig(**fields)).validate()


@torch.no_grad()
def network_streams(model: nn.Module, x: torch.Tensor, pes: int, vectors: int, seed: int, groups: int = 8):
    """Real (activation, weight) code streams for a column of ``pes`` PEs: ``groups`` weight slices
    (random layer, output channel and reduction offset), each held while consecutive input windows of
    the layer stream through; ``p`` is the exact partial sum of the reduction before the slice."""
    rng = np.random.default_rng(seed)
    seen: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen.append((mod, inp[0])))
        for m in encoded_layers(model)
    ]
    try:
        model.eval()
        model(x)
    finally:
        for h in hooks:
            h.remove()
    mats = []
    for mod, inp in seen:
        bits = mod.bits
        xq = quantize(inp, mod.act_scale, bits).to(torch.int64)
        wq = quantize(mod.weight, mod.weight_scale(), bits).to(torch.int64).reshape(mod.weight.shape[0], -1)
        if xq.dim() == 4:
            cols = (
                F.unfold(xq.double(), mod.kernel_size, mod.dilation, mod.padding, mod.stride).round().long()
            )
            xq = cols.transpose(1, 2).reshape(-1, cols.shape[1])
        mats.append((xq.numpy(), wq.numpy()))
    per = -(-vectors // groups)
    a_rows, w_rows, p_rows = [], [], []
    for _ in range(groups):
        xs, ws = mats[int(rng.integers(len(mats)))]
        k = xs.shape[1]
        o = int(rng.integers(ws.shape[0]))
        j = int(rng.integers(0, max(1, k - pes + 1)))
        start = int(rng.integers(0, max(1, xs.shape[0] - per)))
        block = xs[start : start + per]
        a = np.zeros((len(block), pes), np.int64)
        w = np.zeros(pes, np.int64)
        width = min(pes, k - j)
        a[:, :width], w[:width] = block[:, j : j + width], ws[o, j : j + width]
        a_rows.append(a)
        w_rows.append(np.repeat(w[None], len(block), axis=0))
        p_rows.append(block[:, :j] @ ws[o, :j])
    return (
        np.concatenate(a_rows)[: vectors + 1],
        np.concatenate(w_rows)[: vectors + 1],
        np.concatenate(p_rows)[: vectors + 1],
    )


def _apply(name: str, encoder, settings: dict, data, seed: int) -> tuple[nn.Module, dict]:  # noqa: ANN001
    model, _, _ = load_pretrained(name)
    ft = dict(settings["finetune"][name])
    eval_images = ft.pop("eval_images")
    cfg = EncodingConfig(bits=settings["bits"], init="random", seed=seed, **ft)
    return encodingnet(model, cfg, data=data, encoder=encoder, eval_images=eval_images, progress=False)


def _plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for model in sorted({r["model"] for r in rows}):
        rs = sorted((r for r in rows if r["model"] == model), key=lambda r: r["threshold"])
        ax1.plot(
            [100 * r["threshold"] for r in rs], [100 * r["acc"] for r in rs], "o-", label=f"{model} encoded"
        )
        ax1.axhline(
            100 * rs[0]["acc_exact"], ls="--", lw=1, color=ax1.lines[-1].get_color(), label=f"{model} exact"
        )
    ax1.set(xlabel="maxRE threshold (%)", ylabel="test accuracy (%)", xscale="log")
    ax1.legend(fontsize=8)
    rs = sorted({r["threshold"]: r for r in rows}.values(), key=lambda r: r["threshold"])
    ax2.plot([100 * r["threshold"] for r in rs], [r["area_encoded"] for r in rs], "o-", label="encoded MAC")
    ax2.plot(
        [100 * r["threshold"] for r in rs], [r["area_multiplier"] for r in rs], "s--", label="multiplier MAC"
    )
    ax2.set(xlabel="maxRE threshold (%)", ylabel="area per MAC (OSU018 units)", xscale="log")
    ax2.legend(fontsize=8)
    fig.suptitle(f"EncodingNet, {rows[0]['bits']}-bit, Fashion-MNIST")
    save_figure(fig, path)


def _state_key(settings: dict, seed: int) -> str:
    """What a saved row depends on: the settings that shape encoders, fine-tuning and hardware."""
    keys = ("bits", "search", "finetune", "pes", "vectors")
    return json.dumps({"seed": seed, **{k: settings[k] for k in keys}}, sort_keys=True, default=str)


def _load_state(path: Path, key: str) -> dict[str, Any]:
    """Finished work of an earlier (killed or narrower) run with the same settings: exact accuracies,
    rows per (model, threshold) and hardware per threshold; empty when absent or made with others."""
    empty: dict[str, Any] = {"key": key, "exact": {}, "rows": {}, "hardware": {}}
    if not path.exists():
        return empty
    state = json.loads(path.read_text())
    return state if state.get("key") == key else empty


def run_protocol(out_dir: Path, quick: bool, seed: int, **options: Any) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    settings = {**(QUICK if quick else FULL), **options}
    bits = settings["bits"]
    data = load_fashion_mnist(seed=0)
    tag = "encodingnet_quick" if quick else "encodingnet"
    rows: list[dict[str, Any]] = []
    searches: dict[float, dict] = {}
    state_path = out_dir / f"{tag}_state.json"  # rows already measured: a rerun adds only the missing ones
    state = _load_state(state_path, _state_key(settings, seed))
    exact_acc = state["exact"]
    for name in settings["models"]:
        if name not in exact_acc:
            _, rec = _apply(name, exact_encoder(bits), settings, data, seed)
            exact_acc[name] = rec["acc"]
            atomic_write_json(state_path, state)
        print(f"  {name} exact {bits}-bit: acc {exact_acc[name]:.4f}", flush=True)
    for threshold, kept, generations in settings["sweep"]:
        cfg = search_config(settings, threshold, kept, generations, seed)
        t0 = time.perf_counter()
        enc, srec = search(cfg, out_dir / f"search{bits}" / f"th{threshold}", progress=not quick)
        enc.save(out_dir / f"search{bits}" / f"th{threshold}")
        searches[threshold] = {k: v for k, v in srec.items() if k != "history"} | {
            "wall_s": time.perf_counter() - t0
        }
        print(
            f"  th {threshold:.3%}: maxRE {enc.max_re:.4%}, area {enc.area:.1f}, {len(enc.kept)} bits",
            flush=True,
        )
        hw = state["hardware"].get(str(threshold))
        for name in settings["models"]:
            if threshold != settings["main"] and name in settings.get("main_only", ()):
                continue  # the costly model is encoded at the main threshold only
            if f"{name}@{threshold}" in state["rows"] and hw is not None:
                rows.append(state["rows"][f"{name}@{threshold}"])
                continue
            model, rec = _apply(name, enc, settings, data, seed)
            if hw is None:  # streams of the first model's real codes
                a, w, p = network_streams(model, data.x_test[:64], settings["pes"], settings["vectors"], seed)
                hw = compare_columns(enc, a, w, p, cfg.psum_bits, cfg.weight_bits_hw)
            rows.append({
                "model": name, "bits": bits, "threshold": threshold, "max_re": enc.max_re,
                "area_encoded": hw["area_encoded"], "area_multiplier": hw["area_multiplier"],
                "energy_encoded_pj": float(hw["energy_encoded_pj"]), "energy_multiplier_pj": float(hw["energy_multiplier_pj"]),
                "acc": rec["acc"], "acc_exact": exact_acc[name], "acc_before_finetune": rec["acc_before_finetune"],
                "area_saving": hw["area_saving"], "energy_saving": float(hw["energy_saving"]),
                "encoder_area": enc.area, "kept_bits": len(enc.kept), "finetune_steps": rec["finetune"].get("steps", 0),
            })  # fmt: skip
            state["rows"][f"{name}@{threshold}"] = rows[-1]
            state["hardware"][str(threshold)] = hw
            atomic_write_json(state_path, state)
            print(f"    {name}: acc {rec['acc']:.4f} (exact {exact_acc[name]:.4f}), area -{hw['area_saving']:.1%}, "
                  f"energy -{hw['energy_saving']:.1%}", flush=True)  # fmt: skip
        searches[threshold]["hardware"] = hw
        _report(out_dir, tag, rows, searches, settings, seed, data.identity)  # partial results survive a kill
    return _report(out_dir, tag, rows, searches, settings, seed, data.identity)


def _report(out_dir, tag, rows, searches, settings, seed, identity) -> list[dict[str, Any]]:  # noqa: ANN001
    cols = [*ROW_KEYS, "acc_before_finetune", "area_saving", "energy_saving", "kept_bits"]
    table = markdown_table(rows, cols, digits=4)
    main = [r for r in rows if r["threshold"] == settings["main"]]
    evals = [s["evaluations_per_s"] for s in searches.values() if s.get("evaluations_per_s")]
    text = f"# EncodingNet ({settings['bits']}-bit, Fashion-MNIST)\n\n{table}\n"
    text += "\n".join(
        f"- search th {t}: {s['evaluations']} evaluations, {s['evaluations_per_s']:.1f}/s, "
        f"first feasible generation {s['first_feasible_generation']}, {s['generation']} generations"
        for t, s in searches.items()
    )
    write_markdown(out_dir / f"{tag}.md", text + "\n")
    _plot(out_dir / f"{tag}.png", rows)
    write_record(out_dir / f"{tag}.json", make_record("encodingnet", config={k: v for k, v in settings.items()},
                 seed=seed, data=identity, results={"rows": rows, "searches": searches}))  # fmt: skip
    head: list[dict[str, Any]] = []
    if main:
        r0 = main[0]
        head.append({"metric": "MAC area saving", "ours": r0["area_saving"], "baseline": None, "target": ">= 0.45",
                     "met": r0["area_saving"] >= 0.45})  # fmt: skip
        head.append({"metric": "MAC energy/op saving", "ours": r0["energy_saving"], "baseline": None,
                     "target": ">= 0.60", "met": r0["energy_saving"] >= 0.60})  # fmt: skip
        for r in main:
            head.append({"metric": f"{r['model']} accuracy", "ours": r["acc"], "baseline": r["acc_exact"],
                         "target": "loss <= 1 pt", "met": r["acc_exact"] - r["acc"] <= 0.01})  # fmt: skip
    for model in dict.fromkeys(r["model"] for r in rows):  # the best threshold of each network
        ok = [r for r in rows if r["model"] == model and r["acc_exact"] - r["acc"] <= 0.01]
        if not ok:
            continue
        b = max(ok, key=lambda r: r["area_saving"])
        at = f"{model} at threshold {b['threshold']:g}, the largest area saving within 1 pt"
        head.append({"metric": f"MAC area saving, {at}", "ours": b["area_saving"], "baseline": None,
                     "target": ">= 0.45", "met": b["area_saving"] >= 0.45})  # fmt: skip
        head.append({"metric": f"MAC energy/op saving, {at}", "ours": b["energy_saving"], "baseline": None,
                     "target": ">= 0.60", "met": b["energy_saving"] >= 0.60})  # fmt: skip
    if evals:
        head.append(
            {
                "metric": "fitness evaluations/s",
                "ours": float(np.mean(evals)),
                "baseline": None,
                "target": None,
                "met": None,
            }
        )
    return head
