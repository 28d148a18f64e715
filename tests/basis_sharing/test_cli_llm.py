"""`frugalnn llm compress|eval|info` end to end on a tiny model folder, the stats cache and sequential mode."""

from __future__ import annotations

import copy
import json

import torch

from frugalnn.cli import main
from frugalnn.core.llm import load_causal_lm
from frugalnn.methods.basis_sharing import Config, compress


def test_cli_compress_eval_info(tmp_path, smol_tokenizer, capsys, write_tiny_llama):
    dense = write_tiny_llama(tmp_path / "dense", smol_tokenizer)
    text = tmp_path / "calib.txt"
    text.write_text(
        "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife. " * 20
    )
    out = tmp_path / "bs"
    args = [
        "llm",
        "compress",
        "--model",
        str(dense),
        "--ratio",
        "0.3",
        "--calib",
        f"file:{text}",
        "--window",
        "32",
        "--calib-windows",
        "4",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    record = json.loads((out / "frugalnn_compress_record.json").read_text())
    assert 0.25 < record["ratio_achieved"] < 0.45 and record["params_after"] < record["params_before"]
    # our configuration is the default for basis-sharing: per-layer refit + one LoRA epoch
    assert record["config"]["refit"] and record["config"]["lora_epochs"] == 1 and record["lora"]["steps"] == 1
    ref_out = tmp_path / "bs-ref"
    assert main(args[:-1] + [str(ref_out), "--reference"]) == 0
    ref = json.loads((ref_out / "frugalnn_compress_record.json").read_text())
    assert not ref["config"]["refit"] and ref["config"]["lora_epochs"] == 0 and "lora" not in ref
    assert "frugalnn_compression" in json.loads((out / "config.json").read_text())
    assert (out / "modeling_frugalnn.py").is_file() and (out / "model.safetensors").is_file()
    assert (
        main(
            ["llm", "eval", "--model", str(out), "--data", f"file:{text}", "--tokens", "96", "--window", "32"]
        )
        == 0
    )
    assert main(["llm", "info", "--model", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "perplexity" in printed and "sharing" in printed
    # bad input: the folder exists now; a calibration text shorter than one window
    assert main(args) == 2
    short = tmp_path / "short.txt"
    short.write_text("Too short.")
    args_short = args[:-1] + [str(tmp_path / "bs2")]
    args_short[args_short.index(f"file:{text}")] = f"file:{short}"
    assert main(args_short) == 2
    assert not (tmp_path / "bs2").exists()
    assert "error:" in capsys.readouterr().err


def test_stats_cache_gives_the_same_model_and_sequential_mode_runs(
    tmp_path, smol_tokenizer, write_tiny_llama
):
    model, _ = load_causal_lm(write_tiny_llama(tmp_path / "dense", smol_tokenizer))
    calib = torch.randint(0, len(smol_tokenizer), (4, 16), generator=torch.Generator().manual_seed(0))
    ids = calib[:2]
    cache: dict = {}
    compress(
        copy.deepcopy(model), Config(ratio=0.5, method="svd-llm"), calib, progress=False, stats_cache=cache
    )
    assert cache  # filled by a group-size-1 run, reused by a group-size-2 run below
    a, _ = compress(copy.deepcopy(model), Config(ratio=0.3), calib, progress=False, stats_cache=cache)
    b, _ = compress(copy.deepcopy(model), Config(ratio=0.3), calib, progress=False)
    with torch.no_grad():
        assert torch.allclose(a(ids).logits, b(ids).logits, atol=1e-5)
    seq, rec = compress(
        copy.deepcopy(model),
        Config(ratio=0.3, propagate="compressed", refit=True, allocation="loss"),
        calib,
        progress=False,
    )
    assert abs(rec["ratio_achieved"] - 0.3) < 0.1
    with torch.no_grad():
        assert torch.isfinite(seq(ids).logits).all()


def test_cli_weighted_calibration_and_multi_domain_eval(tmp_path, smol_tokenizer, capsys, write_tiny_llama):
    from frugalnn.core.data import load_text, token_windows
    from frugalnn.core.llm import encode_text, perplexity

    dense = write_tiny_llama(tmp_path / "dense", smol_tokenizer)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("The quick brown fox jumps over the lazy dog. " * 40)
    b.write_text("Hackers write code that other hackers read at night. " * 40)
    out = tmp_path / "bs"
    args = [
        "llm",
        "compress",
        "--model",
        str(dense),
        "--ratio",
        "0.3",
        "--window",
        "32",
        "--calib-windows",
        "5",
    ]
    assert main([*args, "--calib", f"file:{a}=3,file:{b}=2", "--reference", "--out", str(out)]) == 0
    record = json.loads((out / "frugalnn_compress_record.json").read_text())
    assert [s["windows"] for s in record["calibration_data"]["sources"]] == [3, 2]
    capsys.readouterr()
    data = f"file:{a},file:{b}"
    ask = ["llm", "eval", "--model", str(out), "--baseline", str(dense), "--data", data]
    assert main([*ask, "--tokens", "96", "--window", "32", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)  # progress goes to stderr: stdout is the JSON alone
    model, tok = load_causal_lm(dense)
    for row, path in zip(table, (a, b)):
        windows = token_windows(encode_text(tok, load_text(f"file:{path}").text), 32, limit_tokens=96)
        assert (
            abs(row["baseline_perplexity"] - perplexity(model, windows)) < 1e-6 * row["baseline_perplexity"]
        )
        assert abs(row["ratio_to_baseline"] - row["perplexity"] / row["baseline_perplexity"]) < 1e-12
    assert main([*args, "--calib", "jargon=0", "--out", str(tmp_path / "x")]) == 2
    assert "weight > 0" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["llm", "eval", "--model", str(out), "--data", "wiki"]) == 2
    assert "unknown text source 'wiki'" in capsys.readouterr().err
