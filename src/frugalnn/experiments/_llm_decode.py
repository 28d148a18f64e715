"""Report of the decode benchmark (bench/bench_llm_decode.py): from the per-round records in
docs/results/llm_decode/, the fastest round of every figure, speed-ups against the dense model measured in
the same rounds, peak resident memory, the greedy-token check (fused vs unfused bases), the share of the
FLOPs in the uncompressed LM head, and the per-layer GEMM timings; writes llm_decode.md / .png / .json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from frugalnn.core.report import line_plot, make_record, markdown_table, write_markdown, write_record

TARGETS = {"decode_b1": 1.5, "decode_b8": 1.5, "prefill_all": 1.3, "prefill_last": 1.45}
LABELS = {
    "decode_b1": "decode, batch 1",
    "decode_b8": "decode, batch 8",
    "prefill_all": "prefill b8×256, all-position logits",
    "prefill_last": "prefill b8×256, last-position logits",
}
# SmolLM2-135M: hidden 576, 30 layers, 9 query heads × 64, vocabulary 49,152 (the tied embedding is the head)
HIDDEN, LAYERS, VOCAB = 576, 30, 49152


def _rounds(folder: Path) -> list[dict[str, Any]]:
    paths = sorted(
        folder.glob("llm_decode_round*.json"), key=lambda p: int(p.stem.removeprefix("llm_decode_round"))
    )
    return [json.loads(p.read_text()) for p in paths]


def _tokens_per_s(key: str, seconds: float, cfg: dict[str, Any]) -> float:
    batch, prompt, new = cfg["batch"], 256, cfg["new_tokens"]
    if key.startswith("prefill"):
        return batch * prompt / seconds
    return (batch if key == "decode_b8" else 1) * (new - 1) / seconds


def _agree(a: list, b: list) -> tuple[int, int]:
    flat_a = [t for row in (a if isinstance(a[0], list) else [a]) for t in row]
    flat_b = [t for row in (b if isinstance(b[0], list) else [b]) for t in row]
    return sum(x == y for x, y in zip(flat_a, flat_b, strict=True)), len(flat_a)


def head_share(proj_params: float, context: float) -> dict[str, float]:
    """Per-token FLOPs (2 per multiply-add) of the decoder projections, attention at ``context`` positions
    and the LM head; the head's share."""
    proj, head = 2 * proj_params, 2 * HIDDEN * VOCAB
    attn = 2 * 2 * LAYERS * HIDDEN * context  # q·Kᵀ and p·V over all heads (grouped KV: same FLOPs)
    return {"proj_mflop": proj / 1e6, "attn_mflop": attn / 1e6, "head_mflop": head / 1e6,
            "head_share": head / (proj + attn + head)}  # fmt: skip


def write_report(folder: Path) -> dict[str, Any]:
    rounds = _rounds(folder)
    if not rounds:
        raise SystemExit(f"no llm_decode_round*.json in {folder}; run bench/bench_llm_decode.py --what round")
    cfg = rounds[0]["config"]
    by_config: dict[str, list[dict[str, Any]]] = {}
    for rec in rounds:
        for result in rec["results"]:
            by_config.setdefault(result["config"], []).append(result)
    prepare = json.loads((folder / "llm_decode_prepare.json").read_text())["results"]
    params = {f"bs{round(100 * r['ratio'])}": r["params_after"] for r in prepare}
    params["dense"] = prepare[0]["params_before"]
    best = {
        name: {k: min(r[k]["wall"] for r in results) for k in TARGETS} for name, results in by_config.items()
    }
    best_cpu = {
        name: {k: min(r[k]["cpu"] for r in results) for k in TARGETS} for name, results in by_config.items()
    }
    rows = []
    for name, results in by_config.items():
        base = name.split("-")[0]
        row: dict[str, Any] = {"config": name, "ratio": 0.0 if base == "dense" else int(base[2:]) / 100,
                               "params_M": params[base] / 1e6, "rounds": len(results)}  # fmt: skip
        for key in TARGETS:
            row[key] = _tokens_per_s(key, best[name][key], cfg)
            row[f"{key}_x"] = best["dense"][key] / best[name][key]
            row[f"{key}_x_cpu"] = best_cpu["dense"][key] / best_cpu[name][key]
        row["peak_rss_load_MiB"] = min(r["peak_rss_load"] for r in results) / 2**20
        row["rss_loaded_MiB"] = min(r["rss_loaded"] for r in results) / 2**20
        for phase in ("decode_b1", "decode_b8", "prefill"):  # peak since a reset before it (clear_refs)
            peaks = [r[f"peak_rss_{phase}"] for r in results if r.get(f"peak_rss_{phase}")]
            row[f"peak_rss_{phase}_MiB"] = min(peaks) / 2**20 if peaks else None
        row["fused_copy_MiB"] = results[0]["fused_copy_bytes"] / 2**20
        row["deterministic"] = all(r["tokens_b8"] == results[0]["tokens_b8"] for r in results)
        rows.append(row)
    rows.sort(key=lambda r: (r["ratio"], r["config"]))
    checks = {}
    if "bs50" in by_config and "bs50-unfused" in by_config:
        fused, plain = by_config["bs50"][0], by_config["bs50-unfused"][0]
        checks = {f"greedy_{b}_fused_vs_unfused": _agree(fused[f"tokens_{b}"], plain[f"tokens_{b}"]) for b in ("b1", "b8")}  # fmt: skip
    context = 256 + cfg["new_tokens"] / 2
    flops = {
        name: head_share(params[name] - VOCAB * HIDDEN, context)
        for name in ("dense", "bs50")
        if name in params
    }
    at50 = next((r for r in rows if r["config"] == "bs50"), None)
    targets = {k: {"target": t, "ours": at50[f"{k}_x"] if at50 else None,
                   "met": bool(at50 and at50[f"{k}_x"] >= t)} for k, t in TARGETS.items()}  # fmt: skip
    _write_markdown(folder, rows, checks, flops, targets)
    _plot(folder, rows)
    summary = {"rows": rows, "greedy_checks": checks, "flops_per_token": flops, "targets": targets}
    write_record(
        folder / "llm_decode.json",
        make_record("llm-decode", config=cfg, seed=None, data=rounds[0]["data"], results=summary,
                    about="decode / prefill tokens/s and peak RSS, dense vs Basis Sharing 20-50%, 1 thread"),
    )  # fmt: skip
    return summary


def _write_markdown(folder: Path, rows: list, checks: dict, flops: dict, targets: dict) -> None:
    speed = [
        {"config": r["config"], "params (M)": r["params_M"],
         **{f"{LABELS[k]} tok/s": r[k] for k in TARGETS},
         **{f"{k} ×dense": r[f"{k}_x"] for k in TARGETS},
         "RSS loaded (MiB)": r["rss_loaded_MiB"],
         "peak RSS decode b1 (MiB)": r["peak_rss_decode_b1_MiB"],
         "peak RSS decode b8 (MiB)": r["peak_rss_decode_b8_MiB"],
         "peak RSS prefill all-logits (MiB)": r["peak_rss_prefill_MiB"]}
        for r in rows
    ]  # fmt: skip
    at50 = next((r for r in rows if r["config"] == "bs50"), {})
    target_rows = [{"figure at 50%": LABELS[k], "×dense (wall)": v["ours"], "×dense (thread CPU)":
                    at50.get(f"{k}_x_cpu"), "target": v["target"], "met": "yes" if v["met"] else "no"}
                   for k, v in targets.items()]  # fmt: skip
    flop_rows = [{"model": k, **v} for k, v in flops.items()]
    text = (
        "# Decode benchmark: SmolLM2-135M-Instruct, dense vs Basis Sharing (fused bases), 1 torch thread\n\n"
        "Fastest wall time of the rounds for each figure; RSS in MiB: resident after loading and one short\n"
        "warm-up generation, and the peak of each phase since a reset before it (it includes the Python,\n"
        "torch and transformers process, ≈ 476 MiB).\n\n"
        + markdown_table(speed, digits=2)
        + "\n## Targets (Basis Sharing 50% vs dense, fastest round of each)\n\n"
        + markdown_table(target_rows, digits=2)
        + "\n## Per-token FLOPs (2 per multiply-add) at the mean decode context\n\n"
        + markdown_table(flop_rows, digits=3)
        + f"\nGreedy tokens, fused vs unfused bases at 50% (agreeing / total): {checks}\n"
    )
    prof = folder / "llm_decode_profile.json"
    if prof.is_file():
        text += "\n## A batch-1 decode step (ms, torch.profiler; profiling adds overhead)\n\n"
        text += markdown_table(json.loads(prof.read_text())["results"], digits=1)
    gemm = folder / "llm_decode_gemm.json"
    if gemm.is_file():
        text += "\n## Per-layer projection GEMMs (thread CPU time, fastest of interleaved rounds)\n\n"
        text += markdown_table(json.loads(gemm.read_text())["results"], digits=2)
    write_markdown(folder / "llm_decode.md", text)


def _plot(folder: Path, rows: list) -> None:
    fused = [r for r in rows if not r["config"].endswith("-unfused")]
    series = {LABELS[k]: ([r["ratio"] for r in fused], [r[k] for r in fused]) for k in TARGETS}
    line_plot(folder / "llm_decode.png", series, xlabel="share of projection parameters removed (0: dense)",
              ylabel="tokens/s (1 thread)", title="SmolLM2-135M, Basis Sharing with fused bases",
              logy=True, legend_outside=True)  # fmt: skip
