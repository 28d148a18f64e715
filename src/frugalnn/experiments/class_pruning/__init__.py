"""Experiment ``class-pruning``: class-aware pruning (arXiv 2312.05875) vs L1 and class-agnostic Taylor at
equal MACs, small scale. From the zoo's Fashion-MNIST baselines (ResNet-20, VGG-small): prune each to the
same MAC targets with the three criteria and the same fine-tuning budget; report test accuracy against MACs
and parameters and the histogram of what class-aware pruning removes. One run is ``protocol.py``, tables
and plots ``report.py``, the bench's resumable grids ``grid.py`` and CPU throughput ``timing.py``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from frugalnn.experiments import register, row
from frugalnn.experiments.class_pruning.protocol import FULL_BUDGET, QUICK_BUDGET, run_one

CUT_TARGET = 80.0  # the targets: >= 80% fewer MACs at <= 1 point, class-aware >= L1 and Taylor
LOSS_TARGET_PT = 1.0
SHARE_TARGET = 0.75  # CPU throughput: at least 75% of the speed-up the MAC cut promises


def headline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model and MAC cut: each criterion's test accuracy (the baseline column: the best of L1 and
    Taylor at that cut; target: class-aware at least as accurate) and the drop at >= 80% fewer MACs."""
    if record["name"] in ("class_pruning_widths", "class_pruning_throughput"):
        return [row(f"{r['model']} {r.get('method', 'l1-uniform')} @ {100 * r['mac_reduction']:.1f}% fewer MACs"
                    f"{', widths of ' + str(r['round_to']) if 'round_to' in r else ''}: share of the MAC promise",
                    r["share_of_promise"], None, f">= {SHARE_TARGET}", r["share_of_promise"] >= SHARE_TARGET)
                for r in record["results"]]  # fmt: skip
    if record["name"] == "class_pruning_stage_search":
        best = max(
            (r for r in record["results"] if "share_remeasured" in r), key=lambda r: r["share_remeasured"]
        )
        return [row(f"best ResNet-20 stage widths at {1 - best['keep']:.0%} fewer MACs: share of the MAC promise",
                    best["share_remeasured"], None, f">= {SHARE_TARGET}", best["share_remeasured"] >= SHARE_TARGET)]  # fmt: skip
    table = record["results"]["table"]
    rows = []
    for t in table:
        if t["method"] == "dense":
            continue
        rivals = [u["test acc %"] for u in table if (u["model"], u["MAC cut %"]) == (t["model"], t["MAC cut %"])
                  and u["method"] in ("l1", "taylor")]  # fmt: skip
        cut = f"{t['model']} {t['method']} @ {t['MAC cut %']:.1f}% fewer MACs"
        class_aware = t["method"].startswith("class-aware")
        rows.append(row(f"{cut}: test accuracy % ({t['seeds']} seed(s))", t["test acc %"],
                        max(rivals) if rivals and class_aware else None,
                        ">= best of L1, Taylor" if class_aware and rivals else None,
                        t["test acc %"] >= max(rivals) if class_aware and rivals else None))  # fmt: skip
        if t["MAC cut %"] >= CUT_TARGET - 0.5:
            rows.append(row(f"{cut}: accuracy drop (points)", t["drop (points)"], None,
                            f"<= {LOSS_TARGET_PT} at >= {CUT_TARGET:.0f}% fewer MACs",
                            t["drop (points)"] <= LOSS_TARGET_PT))  # fmt: skip
    return rows


@register(
    "class-pruning",
    "class-aware vs L1 vs Taylor filter pruning at equal MACs (ResNet-20, VGG-small)",
    30,
    headline=headline,
)
def run(
    out_dir: Path,
    quick: bool,
    seed: int,
    test_images: int | None = None,
    methods: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    """Quick (the demo): ResNet-20, 60% fewer MACs, a few steps, 1,000 test images. Full: both models at
    60/80/90% with the 700-step budget and the dense control. ``test_images`` shrinks the test split,
    ``methods`` keeps only those criteria (the end-to-end test runs one)."""
    import torch

    from frugalnn.core.data import load_fashion_mnist
    from frugalnn.core.report import make_record, write_record
    from frugalnn.experiments.class_pruning.report import write_report
    from frugalnn.methods.class_pruning import METHODS

    torch.set_num_threads(1)
    data = load_fashion_mnist(seed=0)
    models, targets, budget = ("resnet20", "vgg-small"), (0.4, 0.2, 0.1), FULL_BUDGET
    if quick:
        models, targets, budget = ("resnet20",), (0.4,), QUICK_BUDGET
        test_images = test_images or 1000
    if test_images:
        data = replace(data, x_test=data.x_test[:test_images], y_test=data.y_test[:test_images])
    rows = []
    for model_name in models:
        if not quick:  # the control: the dense model fine-tuned with the same budget
            rows.append(run_one(model_name, "dense", 1.0 - 1e-9, seed, data, budget))
        for target in targets:
            for method in methods or METHODS:
                print(f"  {model_name} {method} keep {target:.0%} of MACs", flush=True)
                rows.append(run_one(model_name, method, target, seed, data, budget))
                r = rows[-1]
                print(f"    test acc {r['test_accuracy']:.4f} (dense {r['dense_test_accuracy']:.4f}), "
                      f"MAC cut {r['mac_reduction']:.1%}, {r['seconds']:.0f} s", flush=True)  # fmt: skip
    report = write_report(out_dir, rows)
    config = {
        "models": models,
        "targets": targets,
        "budget": budget,
        "quick": quick,
        "test_images": test_images,
        "methods": list(methods or METHODS),
    }
    record = make_record(
        "class-pruning", config=config, seed=seed, data=data.identity, results={"rows": rows, **report}
    )
    write_record(out_dir / "class_pruning.json", record)
    return headline(record)
