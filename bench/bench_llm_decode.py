"""Decode benchmark on SmolLM2-135M-Instruct, 1 torch thread: greedy generation tokens/s with a KV cache
(batch 1 and batch 8, 128 new tokens after 256-token Pride and Prejudice prompts), prefill throughput
(batch 8 × 256 with logits at every position and at the last one only) and peak resident memory, for the
dense model and Basis Sharing at 20/30/40/50% (fused bases; 50% also unfused). Each configuration runs in
its own subprocess (so the peak RSS is that configuration's), loaded as transformers loads the folders
(``from_pretrained``, ``trust_remote_code=True`` for the compressed ones). Writes docs/results/llm_decode/.

    bench/bench_llm_decode.py --what prepare   # compress once per ratio (8 Emma windows), save the folders
    bench/bench_llm_decode.py --what round     # one round: every configuration once, each in a subprocess
    bench/bench_llm_decode.py --what gemm      # per-layer projection GEMMs: dense vs unfused vs fused bases
    bench/bench_llm_decode.py --what profile   # where a batch-1 decode step's time goes (dense, 50%)
    bench/bench_llm_decode.py --what report    # llm_decode.md / .png / .json from the rounds

Rounds interleave the configurations (the order alternates between rounds), so load on the machine hits
every configuration alike; the report takes each figure's fastest round.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from frugalnn.core.report import make_record, write_record  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "llm_decode"
RATIOS = (0.2, 0.3, 0.4, 0.5)
CONFIGS = ("dense", "bs20", "bs30", "bs40", "bs50", "bs50-unfused")
PROMPT_TOKENS, NEW_TOKENS, BATCH = 256, 128, 8
CALIB_WINDOWS, CALIB_LENGTH = 8, 256


def _folders() -> tuple[Path, Path]:
    from frugalnn.core import llm
    from frugalnn.core.assets import cache_dir

    return llm._bundled_folder("smollm2"), cache_dir() / "bench" / "llm_decode"


def _folder(config: str) -> Path:
    dense, root = _folders()
    return dense if config == "dense" else root / config.split("-")[0]


def prepare(args: argparse.Namespace) -> None:
    """Compress SmolLM2 at each ratio (reference settings; 8 calibration windows: speed does not depend
    on the quality of the factorisation) and save each as a Hugging Face folder in the cache."""
    from frugalnn.core.data.calib import calibration_windows
    from frugalnn.core.llm import load_causal_lm, save_causal_lm
    from frugalnn.methods.basis_sharing import BasisSharingConfig, compress

    dense, tok = load_causal_lm("smollm2")
    calib, identity = calibration_windows(
        lambda text: tok(text, add_special_tokens=False)["input_ids"], "austen:emma", CALIB_WINDOWS,
        CALIB_LENGTH, seed=0,
    )  # fmt: skip
    cache: dict = {}
    rows = []
    for ratio in args.ratios:
        config = BasisSharingConfig(ratio=ratio)
        model, record = compress(copy.deepcopy(dense), config, calib, progress=False, stats_cache=cache)
        folder = _folder(f"bs{round(100 * ratio)}")
        save_causal_lm(model, tok, folder, overwrite=True)
        rows.append({"ratio": ratio, "folder": str(folder), **{k: record[k] for k in ("params_before", "params_after", "ratio_achieved")}})  # fmt: skip
        print(f"{ratio:.2f}: {record['params_after'] / 1e6:.2f} M parameters -> {folder}", flush=True)
    write_record(
        RESULTS / "llm_decode_prepare.json",
        make_record("llm-decode-prepare", config={"calib_windows": CALIB_WINDOWS, "calib_length": CALIB_LENGTH,
                    "basis_sharing": BasisSharingConfig().to_dict()}, seed=0, data=identity, results=rows,
                    about="the compressed SmolLM2 folders the decode benchmark loads"),
    )  # fmt: skip


def _prompts() -> tuple[torch.Tensor, dict[str, Any]]:
    """BATCH consecutive PROMPT_TOKENS-token windows from the start of Pride and Prejudice."""
    from transformers import AutoTokenizer

    from frugalnn.core.data.text import load_text, token_windows
    from frugalnn.core.llm import encode_text

    text = load_text("austen:prideprejudice")
    tok = AutoTokenizer.from_pretrained(str(_folder("dense")))
    ids = token_windows(encode_text(tok, text.text[:200_000]), PROMPT_TOKENS)[:BATCH]
    return ids, {**text.identity, "prompt_tokens": PROMPT_TOKENS, "prompts": BATCH}


def _load(config: str) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    remote = config != "dense"
    model = AutoModelForCausalLM.from_pretrained(
        str(_folder(config)), trust_remote_code=remote, dtype=torch.float32
    )
    if config.endswith("-unfused"):
        model.fuse_bases(False)
    return model.eval()


def _bytes(model: torch.nn.Module) -> dict[str, int]:
    params = sum(p.numel() * p.element_size() for p in model.parameters())  # distinct tensors
    fused = {
        id(m.fused_input.fused): m.fused_input.fused
        for m in model.modules()
        if getattr(m, "fused_input", None) is not None
    }
    extra = sum(f.weight().numel() * f.weight().element_size() for f in fused.values())
    return {"param_bytes": params, "fused_copy_bytes": extra, "fused_tensors": len(fused)}


def one(args: argparse.Namespace) -> None:
    """Measure one configuration (run as a subprocess of ``round``); the result JSON goes to --json."""
    from frugalnn.core.decode import (
        greedy_decode,
        peak_rss_bytes,
        prefill_seconds,
        reset_peak_rss,
        vm_hwm_bytes,
    )

    torch.set_num_threads(1)
    ids, _ = _prompts()
    start = time.perf_counter()
    model = _load(args.config)
    load_s, load_rss = time.perf_counter() - start, peak_rss_bytes()
    greedy_decode(model, ids[:1, :32], 4)  # warm-up: allocator, fused weights, kernels
    reset = reset_peak_rss()  # from here on: the peak of each phase since a reset before it
    out: dict[str, Any] = {"config": args.config, "load_s": load_s, "peak_rss_load": load_rss,
                           "rss_loaded": vm_hwm_bytes("VmRSS")}  # fmt: skip
    run1 = greedy_decode(model, ids[:1], NEW_TOKENS)
    out["peak_rss_decode_b1"] = peak_rss_bytes() if reset else None
    run8 = greedy_decode(model, ids, NEW_TOKENS)
    out["peak_rss_decode_b8"] = peak_rss_bytes() if reset else None
    reset_peak_rss()
    out["prefill_all"] = vars(prefill_seconds(model, ids, 0))  # [8, 256, 49152] float logits: 384 MiB
    out.update(
        peak_rss_prefill=peak_rss_bytes() if reset else None, prefill_last=vars(run8.prefill),
        decode_b8=vars(run8.steps), prefill_b1=vars(run1.prefill), decode_b1=vars(run1.steps),
        tokens_b1=run1.tokens[0].tolist(), tokens_b8=run8.tokens.tolist(), **_bytes(model),
    )  # fmt: skip
    Path(args.json).write_text(json.dumps(out))


def _round_index() -> int:
    return 1 + sum(1 for _ in RESULTS.glob("llm_decode_round*.json"))


def run_round(args: argparse.Namespace) -> None:
    index = _round_index()
    order = list(args.configs) if index % 2 else list(reversed(args.configs))
    results = []
    for config in order:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "one.json"
            cmd = [sys.executable, __file__, "--what", "one", "--config", config, "--json", str(out)]
            subprocess.run(cmd, check=True)
            result = json.loads(out.read_text())
        results.append(result)
        print(f"{config:13s} decode b1 {(NEW_TOKENS - 1) / result['decode_b1']['wall']:6.1f} tok/s  "
              f"b8 {BATCH * (NEW_TOKENS - 1) / result['decode_b8']['wall']:6.1f} tok/s  "
              f"peak RSS {result['peak_rss_load'] / 2**20:.0f} MiB", flush=True)  # fmt: skip
    _, identity = _prompts()
    write_record(
        RESULTS / f"llm_decode_round{index}.json",
        make_record("llm-decode-round", config={"configs": order, "new_tokens": NEW_TOKENS, "batch": BATCH,
                    "threads": 1, "folders": {c: str(_folder(c)) for c in order}}, seed=None, data=identity,
                    results=results, about=f"decode benchmark round {index}: every configuration once"),
    )  # fmt: skip


def _projections(layer: torch.nn.Module, x: torch.Tensor, h: torch.Tensor, fusable_only: bool) -> None:
    a, m = layer.self_attn, layer.mlp
    a.q_proj(x), a.k_proj(x), a.v_proj(x), m.gate_proj(x), m.up_proj(x)
    if not fusable_only:
        a.o_proj(x), m.down_proj(h)


def _layers_call(layers: Any, x: torch.Tensor, h: torch.Tensor, fusable_only: bool) -> Any:
    def call() -> None:
        for layer in layers:
            _projections(layer, x, h, fusable_only)

    return call


def gemm(args: argparse.Namespace) -> None:
    """Per-layer time of a layer's projections on M tokens: dense, Basis Sharing 50% unfused and fused
    (each call runs the projections of several layers, so small-M calls read their weights from memory
    rather than cache); fastest of interleaved rounds, 1 thread."""
    from frugalnn.core.measure import fastest_seconds

    torch.set_num_threads(1)
    models = {c: _load(c) for c in ("dense", "bs50-unfused", "bs50")}
    rows = []
    for tokens in args.tokens:
        layers = 30 if tokens <= 64 else 4
        x, h = torch.randn(tokens, 576), torch.randn(tokens, 1536)
        for fusable in (True, False):
            calls = {name: _layers_call(m.model.layers[:layers], x, h, fusable) for name, m in models.items()}
            seconds = fastest_seconds(calls, rounds=args.repeats, repeats=3, clock="thread")
            what = "q,k,v,gate,up" if fusable else "all 7"
            for name, s in seconds.items():
                rows.append({"tokens": tokens, "projections": what, "model": name, "us_per_layer": 1e6 * s / layers,
                             "speedup_vs_dense": seconds["dense"] / s})  # fmt: skip
                print(f"M={tokens:5d} {what:14s} {name:13s} {1e6 * s / layers:9.1f} us/layer "
                      f"x{seconds['dense'] / s:.2f}", flush=True)  # fmt: skip
    write_record(
        RESULTS / "llm_decode_gemm.json",
        make_record("llm-decode-gemm", config={"tokens": args.tokens, "rounds": args.repeats, "threads": 1,
                    "clock": "thread CPU time"}, seed=None, data={"model": "smollm2", "inputs": "randn"},
                    results=rows, about="per-layer projection GEMMs: dense vs Basis Sharing 50% unfused / fused"),
    )  # fmt: skip


def profile(args: argparse.Namespace) -> None:
    """Where a batch-1 decode step's time goes: matrix products (aten::mm) with the LM head timed alone,
    and everything else (attention, KV-cache appends, norms, rotary, Python), by torch.profiler."""
    from frugalnn.core.decode import greedy_decode
    from frugalnn.core.measure import fastest_seconds

    torch.set_num_threads(1)
    ids, _ = _prompts()
    rows = []
    for config in ("dense", "bs50"):
        model = _load(config)
        greedy_decode(model, ids[:1, :32], 4)
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        run = greedy_decode(model, ids[:1], args.steps + 1, around_steps=prof)
        events = prof.key_averages()
        mm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm")) / 1e6
        ops = sum(e.self_cpu_time_total for e in events) / 1e6  # self times of every op: no double count
        h = torch.randn(1, 1, model.config.hidden_size)
        head = fastest_seconds({"head": lambda h=h, m=model: m.lm_head(h)}, rounds=3, repeats=10)["head"]
        step = run.steps.wall / args.steps
        rows.append({"config": config, "step_ms": 1e3 * step, "mm_ms": 1e3 * mm / args.steps,
                     "lm_head_ms": 1e3 * head, "other_aten_ms": 1e3 * (ops - mm) / args.steps,
                     "python_and_rest_ms": 1e3 * (step - ops / args.steps)})  # fmt: skip
        print(rows[-1], flush=True)
    write_record(
        RESULTS / "llm_decode_profile.json",
        make_record("llm-decode-profile", config={"steps": args.steps, "batch": 1, "threads": 1}, seed=None,
                    data={"model": "smollm2", "prompt_tokens": PROMPT_TOKENS}, results=rows,
                    about="batch-1 decode step breakdown (torch.profiler): GEMMs, LM head, the rest"),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--what", choices=("prepare", "round", "one", "gemm", "profile", "report"), default="round"
    )
    p.add_argument(
        "--ratios", nargs="+", type=float, default=list(RATIOS), help="prepare: ratios to compress"
    )
    p.add_argument(
        "--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS, help="round: configurations"
    )
    p.add_argument("--config", choices=CONFIGS, help="one: the configuration to measure")
    p.add_argument("--json", help="one: where the result goes")
    p.add_argument("--tokens", nargs="+", type=int, default=[1, 8, 2048], help="gemm: tokens per call (M)")
    p.add_argument("--repeats", type=int, default=5, help="gemm: interleaved rounds")
    p.add_argument("--steps", type=int, default=32, help="profile: decode steps profiled")
    args = p.parse_args(argv)
    if args.what == "one" and not (args.config and args.json):
        p.error("--what one needs --config and --json")
    if args.what == "report":
        from frugalnn.experiments._llm_decode import write_report

        write_report(RESULTS)
        return 0
    {"prepare": prepare, "round": run_round, "one": one, "gemm": gemm, "profile": profile}[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
