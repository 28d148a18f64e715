"""Experiment ``early-exit``: class-exclusion early exit (AICAS 2024, arXiv 2309.13443) vs the confidence
exit vs no exit on the Fashion-MNIST zoo models. The study is ``study.py``, its tables and the benchmark's
targets ``report.py``, the timed skipping forward ``timing.py``, the joint fine-tuning ablation ``joint.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugalnn.experiments import register, row
from frugalnn.experiments.early_exit.report import TARGET_LOSS_PT
from frugalnn.experiments.early_exit.study import run_study

# ResNet-20's default exits are after every residual block but the last (heads.default_exits); the
# stage ablation puts them after its first two stages only
RESNET_STAGES = ("layer1", "layer2")
# ResNet-20 with an exit after every second block: fewer heads to pay for in wall time (each costs
# 10-20% of a block's time at one thread), more than the two stage exits for the MAC cut
RESNET_ALTERNATE = ("layer1.1", "layer2.0", "layer2.2", "layer3.1")
# VGG-small with an exit after the first conv of every stage as well as after every stage
VGG_FINE = ("blocks.0.2", "blocks.0", "blocks.1.2", "blocks.1", "blocks.2.2")
# (label, zoo model, head pool, exits or None for the default, time the real forward)
MAIN_PLAN = [("vgg-small", "vgg-small", 4, None), ("resnet20", "resnet20", 4, None)]
ABLATION_PLAN = [
    ("vgg-small-gap", "vgg-small", 1, None, False),  # the paper's global-average-pool heads
    ("resnet20-stages", "resnet20", 4, RESNET_STAGES, False),
    ("vgg-small-fine", "vgg-small", 4, VGG_FINE, False),
    ("resnet20-alternate", "resnet20", 4, RESNET_ALTERNATE),
]


def headline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's three targets per model for the paper's exclusion and our hybrid, against the
    confidence exit: MAC cut at ≤ 0.5 pt loss, MACs at equal accuracy, share of the promised wall-time gain."""
    results = record["results"]
    rows = []
    main = [label for label, *_ in MAIN_PLAN]
    ordered = sorted(
        results if isinstance(results, list) else [results], key=lambda r: r["model"] not in main
    )
    for r in ordered:
        conf = r["main"]["confidence"]
        for method, t in r["targets"].items():
            if not isinstance(t, dict):
                continue
            name = f"{r['model']} {method}"
            rows.append(
                row(
                    f"{name}: MAC cut % (loss {t['accuracy_loss_pt']:.2f} pt; confidence "
                    f"{conf['accuracy_loss_pt']:.2f} pt)",
                    100 * t["mac_reduction"],
                    100 * conf["mac_reduction"],
                    f">= 40 at <= {TARGET_LOSS_PT} pt loss",
                    t["ge_40pct_fewer_macs_at_le_0.5pt_loss"],
                )
            )
            rows.append(
                row(
                    f"{name}: MACs/image (M) vs confidence at the same accuracy",
                    r["main"][method]["macs_per_image"] / 1e6,
                    None if t["confidence_macs_at_same_accuracy"] is None
                    else t["confidence_macs_at_same_accuracy"] / 1e6,
                    "fewer than confidence",
                    t["fewer_macs_than_confidence_at_same_accuracy"],
                )
            )  # fmt: skip
            gains = [v for k, v in t.items() if k.endswith("_gain_realised")]
            if gains:
                rows.append(
                    row(f"{name}: best share of the promised wall-time gain", max(gains), None, ">= 0.6",
                        max(gains) >= 0.6)
                )  # fmt: skip
    return rows


@register(
    "early-exit",
    "class-exclusion early exit vs confidence exit vs no exit on Fashion-MNIST",
    order=20,
    headline=headline,
)
def run(
    out_dir: Path,
    quick: bool,
    seed: int,
    models: tuple[str, ...] | None = None,
    ablation: bool = False,
    merge: bool = False,
) -> list[dict[str, Any]]:
    """Quick: VGG-small on subsets. Full: VGG-small and ResNet-20 (``ablation``: plus the head-pool and
    exit-position variants). ``models`` keeps only those plan labels; ``merge`` keeps the records of
    other labels already in ``out_dir`` in the combined report."""
    plan = None
    if not quick:
        plan = MAIN_PLAN + (ABLATION_PLAN if ablation else [])
        if models:
            plan = [p for p in plan if p[0] in models]
    results = run_study(out_dir, quick, seed, plan=plan, merge=merge)
    return headline({"results": results})
