"""The experiment end to end in a still smaller form than --quick (one σ, few chips), and its resume."""

import json

from frugalnn.experiments import get
from frugalnn.experiments.correctnet.protocol import FIELDS, method_config, per_model, settings
from frugalnn.experiments.correctnet.report import collapse_sigma


def test_experiment_small_end_to_end_and_resume(tmp_path):
    method = {"lipschitz_steps": 5, "comp_steps": 5, "search_iters": 1, "search_samples": 2, "search_chips": 2,
              "search_images": 60, "train_chips": 2, "batch_size": 16}  # fmt: skip
    opts = dict(sigmas=(0.9,), draws={"lenet5": 3}, images=120, method=method)
    headline = get("correctnet").fn(tmp_path, True, 0, **opts)
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert {r["variant"] for r in rows} == {"plain", "lipschitz", "correctnet", "comp-all"}
    for r in rows:
        assert set(FIELDS) <= set(r) and r["draws"] == 3 and len(r["per_draw"]) == 3
        assert r["acc_worst"] <= r["acc_p5"] <= r["acc_mean"] <= 1
    comp_all = next(r for r in rows if r["variant"] == "comp-all")
    assert len(comp_all["placement"]) == 5 and comp_all["overhead_macs_pct"] > 0
    assert any("CorrectNet mean / clean" in h["metric"] for h in headline)
    record = json.loads((tmp_path / "correctnet.json").read_text())
    assert record["seed"] == 0 and record["data"] and record["versions"]
    assert (tmp_path / "correctnet.png").stat().st_size > 1000 and "acc_p5" in (
        tmp_path / "correctnet.md"
    ).read_text()
    before = (tmp_path / "rows.jsonl").read_text()
    get("correctnet").fn(tmp_path, True, 0, **opts)  # every row is there: nothing is recomputed
    assert (tmp_path / "rows.jsonl").read_text() == before


def test_collapse_sigma_is_first_plain_mean_below_fraction():
    rows = [{"model": "m", "variant": "plain", "sigma": s, "acc_mean": a, "clean_acc": 0.9}
            for s, a in ((0.1, 0.9), (0.5, 0.5), (0.9, 0.2), (1.1, 0.1))]  # fmt: skip
    assert collapse_sigma(rows, "m", 0.3) == 0.9 and collapse_sigma(rows, "m", 0.05) is None


def test_full_settings_give_each_model_its_sigmas_chips_and_method():
    s = settings(False)
    lenet, vgg = method_config(s, "lenet5", 0), method_config(s, "vgg-small", 0)
    assert (lenet.comp_steps, lenet.search_iters) == (200, 8)  # the shared method settings
    assert (vgg.comp_steps, vgg.search_iters, vgg.search_images) == (100, 4, 300)  # VGG-small's own win
    assert (
        per_model(s["sigmas"], "vgg-small") == (0.9, 0.5, 0.3) and per_model(s["draws"], "vgg-small") >= 100
    )
    assert per_model(settings(True)["sigmas"], "lenet5") == (0.5, 0.9)  # one value for every model
