"""CPU throughput of the ``class-pruning`` protocol's models (1 thread): pruned checkpoints against their
dense baseline, pruned architectures by width rounding and deployment runtime, and a search over
ResNet-20 stage widths for the best share of the MAC promise. One timer: ``core.measure.fastest_seconds``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from frugalnn.core.checkpoint import load_checkpoint
from frugalnn.core.measure import fastest_seconds
from frugalnn.core.report import make_record, markdown_table, write_markdown, write_record
from frugalnn.core.zoo import load_pretrained
from frugalnn.experiments.class_pruning.grid import grid_rows, row_key, save_dir


def fastest_calls(
    calls: dict[str, Callable[[], object]], items: int, rounds: int = 3, repeats: int = 3, clock: str = "wall"
) -> dict[str, float]:
    """Items/s per call from ``core.measure.fastest_seconds`` (the median moved the dense/pruned ratio by
    up to 40% under load on this 2-core machine; ``clock="thread"``: docs/class_pruning.md)."""
    return {name: items / t for name, t in fastest_seconds(calls, rounds, repeats, clock).items()}


def speed(
    models: dict[str, nn.Module], x: torch.Tensor, rounds: int = 3, repeats: int = 3
) -> dict[str, float]:
    """Images/s per model at 1 thread in eager mode, wall clock (``fastest_calls``)."""
    for m in models.values():
        m.eval()
    calls = {name: (lambda m=m: m(x)) for name, m in models.items()}
    return fastest_calls(calls, len(x), rounds, repeats)


def speed_runtime(
    models: dict, x: torch.Tensor, runtime: str, rounds: int, clock: str = "thread"
) -> dict[str, float]:
    """Images/s per model, fastest of rounds × 3 interleaved calls, 1 thread, in ``eager`` PyTorch or a
    deployment runtime: ``channels-last`` (BN folded by torch.fx, NHWC tensors), ``torchscript`` (traced, frozen and
    optimised for inference: oneDNN layouts, conv + BN + ReLU fused) or ``onnxruntime`` (ONNX export,
    all graph optimisations, 1 intra-op thread)."""
    import io

    from torch.fx.experimental.optimization import fuse

    fns = {}
    for name, m in models.items():
        m = m.eval()
        if runtime == "eager":
            fns[name] = lambda m=m: m(x)
        elif runtime == "channels-last":
            f = fuse(m).to(memory_format=torch.channels_last)
            xc = x.contiguous(memory_format=torch.channels_last)
            fns[name] = lambda f=f, xc=xc: f(xc)
        elif runtime == "torchscript":
            with torch.no_grad():
                f = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(m, x)))
            fns[name] = lambda f=f: f(x)
        else:
            import onnxruntime as ort

            buf = io.BytesIO()
            torch.onnx.export(m, x, buf, input_names=["x"], dynamo=False)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
            xn = x.numpy()
            fns[name] = lambda sess=sess, xn=xn: sess.run(None, {"x": xn})
    return fastest_calls(fns, len(x), rounds, 3, clock)


def speed_bench(results: Path, *, tags: list[str] | None, batch: int, rounds: int) -> None:
    """Throughput of every saved pruned model against its dense baseline, batch 64, 1 thread."""
    rows = grid_rows(results, tags)
    x = torch.randn(batch, 1, 28, 28)
    speed_json = results / "class_pruning_throughput.json"
    out = json.loads(speed_json.read_text())["results"] if speed_json.exists() else []
    measured_keys = {row_key(r) for r in out}
    for model_name in sorted({r["model"] for r in rows}):
        base = save_dir() / f"base-{model_name}"
        dense, _, _ = load_checkpoint(base) if base.exists() else load_pretrained(model_name)
        mine = [
            r
            for r in rows
            if r["model"] == model_name and r.get("checkpoint") and row_key(r) not in measured_keys
        ]
        for r in mine:
            pruned, _, _ = load_checkpoint(r["checkpoint"])
            ips = speed({"dense": dense, "pruned": pruned}, x, rounds=rounds)
            promised = r["dense_macs"] / r["macs"]
            measured = ips["pruned"] / ips["dense"]
            out.append(
                {
                    "model": model_name, "method": r["method"], "target_flops": r["target_flops"],
                    "seed": r["seed"], "round_to": r.get("round_to", 4), "mac_reduction": r["mac_reduction"],
                    "dense_img_per_s": ips["dense"], "pruned_img_per_s": ips["pruned"],
                    "speedup": measured, "mac_promise": promised, "share_of_promise": measured / promised,
                    "widths": r["record"]["widths"],
                }
            )  # fmt: skip
            print(
                f"{model_name} {r['method']} keep {r['target_flops']} r{r.get('round_to', 4)}: "
                f"{measured:.2f}x of promised {promised:.2f}x ({measured / promised:.0%})",
                flush=True,
            )
            record = make_record(
                "class_pruning_throughput", config={"batch": batch, "threads": 1, "rounds": rounds},
                seed=None, data=None, results=out,
            )  # fmt: skip
            write_record(speed_json, record)
    cols = [
        "model",
        "method",
        "target_flops",
        "round_to",
        "mac_reduction",
        "speedup",
        "mac_promise",
        "share_of_promise",
    ]
    write_markdown(results / "class_pruning_throughput.md", markdown_table(out, cols, digits=2))
    print(markdown_table(out, cols, digits=2))


def widths(
    results: Path,
    *,
    batch: int,
    models: list[str],
    keeps: list[float],
    round_tos: list[int],
    fold_bn: bool,
    runtime: str,
    rounds: int,
    clock: str,
    stem: str,
) -> None:
    """Throughput vs MAC cut of L1-uniform pruned architectures (no fine-tuning: speed depends on the
    widths only) for round_to 1 / 4 / 8, so the effect of CPU-friendly channel counts shows."""
    import copy

    from torch.fx.experimental.optimization import fuse

    from frugalnn.core.measure import count_macs
    from frugalnn.errors import ConfigError
    from frugalnn.methods.class_pruning import ChannelGraph, MacModel, l1_scores, prune_channels
    from frugalnn.methods.class_pruning.prune import allocate_uniform, group_scores

    x = torch.randn(batch, 1, 28, 28)
    out = []
    for model_name in models:
        base = save_dir() / f"base-{model_name}"
        dense, _, _ = load_checkpoint(base) if base.exists() else load_pretrained(model_name)
        dense.eval()
        dense_macs = count_macs(dense, x[:1])
        for keep in keeps:
            for round_to in round_tos:
                graph = ChannelGraph(dense, x[:1])
                scores = group_scores(graph, l1_scores(dense))
                try:
                    removals = allocate_uniform(scores, MacModel(graph), keep * dense_macs, round_to)
                except ConfigError:
                    print(f"{model_name} keep {keep} round_to {round_to}: unreachable", flush=True)
                    continue
                pruned = prune_channels(copy.deepcopy(dense), x[:1], removals)
                macs = count_macs(pruned, x[:1])
                timed = {"dense": dense, "pruned": pruned}
                if fold_bn:  # deployment form: BN folded into the conv before it (both models alike)
                    timed = {k: fuse(copy.deepcopy(m).eval()) for k, m in timed.items()}
                ips = speed_runtime(timed, x, runtime, rounds, clock)
                row = {
                    "model": model_name, "keep_target": keep, "round_to": round_to,
                    "mac_reduction": 1 - macs / dense_macs, "dense_img_per_s": ips["dense"],
                    "pruned_img_per_s": ips["pruned"], "speedup": ips["pruned"] / ips["dense"],
                    "mac_promise": dense_macs / macs,
                    "widths": {n: m.out_channels for n, m in pruned.named_modules() if isinstance(m, torch.nn.Conv2d)},
                }  # fmt: skip
                row["share_of_promise"] = row["speedup"] / row["mac_promise"]
                out.append(row)
                print(
                    f"{model_name} keep {keep} round_to {round_to}: MAC cut {row['mac_reduction']:.1%}, "
                    f"speedup {row['speedup']:.2f}x of {row['mac_promise']:.2f}x ({row['share_of_promise']:.0%})",
                    flush=True,
                )
                config = {
                    "batch": batch, "threads": 1, "rounds": rounds, "pruner": "l1-uniform",
                    "fold_bn": fold_bn, "runtime": runtime, "clock": clock, "torch": torch.__version__,
                }  # fmt: skip
                record = make_record("class_pruning_widths", config=config, seed=None, data=None, results=out)
                write_record(results / f"{stem}.json", record)
    cols = ["model", "keep_target", "round_to", "mac_reduction", "speedup", "mac_promise", "share_of_promise"]
    write_markdown(results / f"{stem}.md", markdown_table(out, cols, digits=2))
    print(markdown_table(out, cols, digits=2))


def stage_search(
    results: Path, *, batch: int, keeps: list[float], slack: float, top: int, rounds: int
) -> None:
    """Is any ResNet-20 width allocation fast enough? Every (stream width, inner conv1 width) per stage on
    a grid, within ``--slack`` under the MAC budget, built from the dense model and timed (thread CPU time,
    batch 64, 1 thread) against the dense one: the best share of the MAC promise any allocation reaches."""
    import copy
    import itertools

    from frugalnn.methods.class_pruning import ChannelGraph, MacModel, prune_channels

    dense, _, _ = load_pretrained("resnet20")
    dense.eval()
    x1, x = torch.zeros(1, 1, 28, 28), torch.randn(batch, 1, 28, 28)
    graph = ChannelGraph(dense, x1)
    macs, full = MacModel(graph), graph.counts()
    stream = {"stem.0": 0, "layer2.0.shortcut.0": 1, "layer3.0.shortcut.0": 2}  # residual-stream groups

    def counts(a: tuple, b: tuple) -> dict[str, int]:  # other groups are layerS.B.conv1
        return {g: a[stream[g]] if g in stream else b[int(g[5]) - 1] for g in full}

    def share(c: dict[str, int], rounds: int) -> float:
        """Measured speed-up of the dense model cut to widths ``c`` over the dense one ÷ its MAC promise."""
        pruned = prune_channels(copy.deepcopy(dense), x1, {g: list(range(c[g], full[g])) for g in c})
        ips = speed_runtime({"dense": dense, "pruned": pruned}, x, "eager", rounds)
        return ips["pruned"] / ips["dense"] / (dense_macs / macs.macs(c))

    grid = [(4, 8, 12, 16), (8, 16, 24, 32), (8, 16, 24, 32, 40, 48, 56, 64)]
    dense_macs = macs.macs(full)
    out = []
    for keep in keeps:
        cands = [
            (a, b) for a in itertools.product(*grid) for b in itertools.product(*grid)
            if (1 - slack) * keep * dense_macs <= macs.macs(counts(a, b)) <= keep * dense_macs
        ]  # fmt: skip
        print(f"keep {keep}: {len(cands)} allocations", flush=True)
        for a, b in cands:
            c = counts(a, b)
            out.append({
                "keep": keep, "stream": a, "inner": b, "mac_promise": dense_macs / macs.macs(c),
                "share_of_promise": share(c, 1),
            })  # fmt: skip
        # the maximum of hundreds of noisy timings is biased upwards: time the best few again, longer,
        # and report those
        mine = sorted((r for r in out if r["keep"] == keep), key=lambda r: -r["share_of_promise"])
        for r in mine[:top]:
            r["share_remeasured"] = share(counts(r["stream"], r["inner"]), rounds)
        best = max(mine[:top], key=lambda r: r["share_remeasured"])
        print(f"keep {keep}: best share {best['share_remeasured']:.2f} (scan {best['share_of_promise']:.2f}) at "
              f"stream {best['stream']} inner {best['inner']}", flush=True)  # fmt: skip
    config = {
        "batch": batch, "threads": 1, "clock": "thread", "grid": grid, "slack": slack, "top": top,
        "rounds": rounds,
    }  # fmt: skip
    record = make_record("class_pruning_stage_search", config=config, seed=None, data=None, results=out)
    write_record(results / "class_pruning_stage_search.json", record)
