"""Benchmark: class-aware vs L1 vs Taylor filter pruning at equal MACs on Fashion-MNIST, plus CPU throughput.

Runs at 1 torch thread. Resumable: rows already in the JSON are skipped, and the JSON is rewritten after
every run, so partial results survive. Pruned checkpoints go to $FRUGALNN_CACHE/bench/class_pruning.

  .venv/bin/python bench/bench_class_pruning.py grid --models resnet20 vgg-small --targets 0.2 --seeds 0
  .venv/bin/python bench/bench_class_pruning.py speed
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from frugalnn.core.assets import cache_dir
from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.report import make_record, markdown_table, write_markdown, write_record
from frugalnn.core.zoo import load_pretrained
from frugalnn.experiments.class_pruning import (
    BUDGETS,
    FULL_BUDGET,
    VARIANTS,
    fastest_calls,
    run_one,
    speed,
    write_report,
)
from frugalnn.methods.class_pruning import load_pruned

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
GRID_JSON = RESULTS / "class_pruning.json"
SPEED_JSON = RESULTS / "class_pruning_throughput.json"
SAVE_DIR = cache_dir() / "bench" / "class_pruning"


def _key(r: dict) -> tuple:
    return (r["model"], r["method"], r["target_flops"], r["seed"], r.get("round_to", 4))


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"]["rows"] if path.exists() else []


def _grid_rows(tags: list[str] | None = None) -> list[dict]:
    """Rows of the per-tag grid files class_pruning_<tag>.json (every tag when None; never the throughput /
    widths files). Tags differ in starting model and budget, so merge one comparable set at a time."""
    files = [
        p
        for p in sorted(RESULTS.glob("class_pruning_*.json"))
        if "throughput" not in p.stem
        and "widths" not in p.stem
        and (tags is None or p.stem.removeprefix("class_pruning_") in tags)
    ]
    return [r for p in files for r in _rows(p)]


def grid(args: argparse.Namespace) -> None:
    data = load_fashion_mnist(seed=0)
    path = RESULTS / f"class_pruning_{args.tag}.json" if args.tag else GRID_JSON
    rows = _rows(path)
    done = {_key(r) for r in rows}
    budget = {**BUDGETS[args.budget]}
    if args.distill is not None:
        budget["distill_weight"] = args.distill
    save_dir = SAVE_DIR / args.tag if args.tag else SAVE_DIR
    config = {"budget": budget, "budget_name": args.budget, "threads": 1, "equal_budget": True}
    for seed in args.seeds:
        for target in args.targets:
            for model in args.models:
                for method in args.methods:
                    key = (model, method, target, seed, args.round_to)
                    if key in done:
                        continue
                    print(f"== {key}", flush=True)
                    base = SAVE_DIR / f"base-{model}" if args.base == "snapshot" else None
                    row = run_one(
                        model, method, target, seed, data, budget, save_dir, True, args.round_to, base
                    )
                    row["base"] = str(base or "zoo")
                    row["budget"] = budget
                    rows.append(row)
                    print(
                        f"   test {row['test_accuracy']:.4f} (dense {row['dense_test_accuracy']:.4f}, "
                        f"drop {row['accuracy_drop_points']:.2f} pts) MAC cut {row['mac_reduction']:.1%} "
                        f"params {row['params']:,} in {row['seconds']:.0f} s",
                        flush=True,
                    )
                    report = write_report(RESULTS, rows, path.stem, plots=False)
                    record = make_record(
                        "class_pruning", config=config, seed=None, data=data.identity,
                        results={"rows": rows, "table": report["table"]},
                    )  # fmt: skip
                    write_record(path, record)
    print(markdown_table(write_report(RESULTS, rows, path.stem, plots=False)["table"], digits=2))


_DATA = None


def _plan_worker_init(threads: int) -> None:
    global _DATA
    torch.set_num_threads(threads)
    _DATA = load_fashion_mnist(seed=0)


def _plan_job(job: dict) -> dict:
    budget = {**BUDGETS[job["budget"]]}
    row = run_one(
        job["model"], job["method"], job["target"], job["seed"], _DATA, budget, None, False,
        job["round_to"], None, job["device"],
    )  # fmt: skip
    row.update(base="zoo", budget=budget, budget_name=job["budget"], torch=torch.__version__)
    return row


def plan(args: argparse.Namespace) -> None:
    """Run a list of grid cells from a JSON plan (``[{model, method, target, seed, budget, round_to}]``,
    in priority order) on ``--workers`` processes, appending each finished row to ``--rows`` (JSON lines):
    for a machine with many cores and a GPU, where every process fine-tunes on ``--device`` and scores and
    evaluates on one CPU thread of its own. Cells already in ``--rows`` are skipped, so a rerun resumes.
    ``import-rows`` turns the lines into the per-budget grid files afterwards."""
    import concurrent.futures as cf
    import multiprocessing as mp

    jobs = json.loads(Path(args.plan).read_text())
    out = Path(args.rows)
    done = set()
    if out.exists():
        done = {(r["model"], r["method"], r["target_flops"], r["seed"], r["round_to"], r["budget_name"])
                for r in map(json.loads, out.read_text().splitlines())}  # fmt: skip
    todo = [
        {**j, "device": args.device}
        for j in jobs
        if (j["model"], j["method"], j["target"], j["seed"], j["round_to"], j["budget"]) not in done
    ]
    print(f"{len(todo)} of {len(jobs)} cells to run on {args.workers} workers ({args.device})", flush=True)
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(args.workers, ctx, _plan_worker_init, (1,)) as pool:
        futures = {pool.submit(_plan_job, j): j for j in todo}  # submitted in priority order
        for fut in cf.as_completed(futures):
            j = futures[fut]
            try:
                row = fut.result()
            except Exception as err:  # one bad cell must not lose the others
                print(f"FAILED {j}: {type(err).__name__}: {err}", flush=True)
                continue
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{j['budget']} {j['model']} {j['method']} keep {j['target']} s{j['seed']}: "
                f"test {row['test_accuracy']:.4f} (drop {row['accuracy_drop_points']:.2f}) in {row['seconds']:.0f} s",
                flush=True,
            )


def import_rows(args: argparse.Namespace) -> None:
    """JSON lines from ``plan`` → docs/results/class_pruning/class_pruning_<prefix>-<budget>.json / .md, one per budget."""
    rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines() if line.strip()]
    data = load_fashion_mnist(seed=0)
    for budget in sorted({r["budget_name"] for r in rows}):
        mine = [r for r in rows if r["budget_name"] == budget]
        path = RESULTS / f"class_pruning_{args.prefix}-{budget}.json"
        report = write_report(RESULTS, mine, path.stem, plots=False)
        config = {
            "budget": BUDGETS[budget], "budget_name": budget, "threads": 1, "equal_budget": True,
            "device": sorted({r["device"] for r in mine}), "torch_on_device": sorted({r["torch"] for r in mine}),
        }  # fmt: skip
        record = make_record(
            "class_pruning", config=config, seed=None, data=data.identity,
            results={"rows": mine, "table": report["table"]},
        )  # fmt: skip
        write_record(path, record)
        print(f"{path.name}: {len(mine)} rows")
        print(markdown_table(report["table"], digits=2))


def merge(args: argparse.Namespace) -> None:
    """Join the per-tag grids (--tags) into class_pruning.json / .md / plots."""
    rows = _grid_rows(args.tags)
    report = write_report(RESULTS, rows)
    config = {
        "budget": FULL_BUDGET,
        "threads": 1,
        "equal_budget": True,
        "merged_from": [f"class_pruning_{t}.json" for t in args.tags],
    }
    data = load_fashion_mnist(seed=0)
    record = make_record(
        "class_pruning",
        config=config,
        seed=None,
        data=data.identity,
        results={"rows": rows, "table": report["table"]},
    )
    write_record(GRID_JSON, record)
    print(markdown_table(report["table"], digits=2))


def speed_bench(args: argparse.Namespace) -> None:
    """Throughput of every saved pruned model against its dense baseline, batch 64, 1 thread."""
    rows = _grid_rows(args.tags)
    x = torch.randn(args.batch, 1, 28, 28)
    out = json.loads(SPEED_JSON.read_text())["results"] if SPEED_JSON.exists() else []
    measured_keys = {_key(r) for r in out}
    for model_name in sorted({r["model"] for r in rows}):
        base = SAVE_DIR / f"base-{model_name}"
        dense, _, _ = load_pruned(base) if base.exists() else load_pretrained(model_name)
        mine = [
            r
            for r in rows
            if r["model"] == model_name and r.get("checkpoint") and _key(r) not in measured_keys
        ]
        for r in mine:
            pruned, _, _ = load_pruned(r["checkpoint"])
            ips = speed({"dense": dense, "pruned": pruned}, x, rounds=args.rounds)
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
                "class_pruning_throughput", config={"batch": args.batch, "threads": 1, "rounds": args.rounds},
                seed=None, data=None, results=out,
            )  # fmt: skip
            write_record(SPEED_JSON, record)
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
    write_markdown(RESULTS / "class_pruning_throughput.md", markdown_table(out, cols, digits=2))
    print(markdown_table(out, cols, digits=2))


def _speed_runtime(
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


def widths(args: argparse.Namespace) -> None:
    """Throughput vs MAC cut of L1-uniform pruned architectures (no fine-tuning: speed depends on the
    widths only) for round_to 1 / 4 / 8, so the effect of CPU-friendly channel counts shows."""
    import copy

    from torch.fx.experimental.optimization import fuse

    from frugalnn.core.measure import count_macs
    from frugalnn.errors import ConfigError
    from frugalnn.methods.class_pruning import ChannelGraph, MacModel, l1_scores, prune_channels
    from frugalnn.methods.class_pruning.prune import allocate_uniform, group_scores

    x = torch.randn(args.batch, 1, 28, 28)
    out = []
    for model_name in args.models:
        base = SAVE_DIR / f"base-{model_name}"
        dense, _, _ = load_pruned(base) if base.exists() else load_pretrained(model_name)
        dense.eval()
        dense_macs = count_macs(dense, x[:1])
        for keep in args.keeps:
            for round_to in args.round_tos:
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
                if args.fold_bn:  # deployment form: BN folded into the conv before it (both models alike)
                    timed = {k: fuse(copy.deepcopy(m).eval()) for k, m in timed.items()}
                ips = _speed_runtime(timed, x, args.runtime, args.rounds, args.clock)
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
                    "batch": args.batch, "threads": 1, "rounds": args.rounds, "pruner": "l1-uniform",
                    "fold_bn": args.fold_bn, "runtime": args.runtime, "clock": args.clock, "torch": torch.__version__,
                }  # fmt: skip
                record = make_record("class_pruning_widths", config=config, seed=None, data=None, results=out)
                write_record(RESULTS / f"{args.stem}.json", record)
    cols = ["model", "keep_target", "round_to", "mac_reduction", "speedup", "mac_promise", "share_of_promise"]
    write_markdown(RESULTS / f"{args.stem}.md", markdown_table(out, cols, digits=2))
    print(markdown_table(out, cols, digits=2))


def stage_search(args: argparse.Namespace) -> None:
    """Is any ResNet-20 width allocation fast enough? Every (stream width, inner conv1 width) per stage on
    a grid, within ``--slack`` under the MAC budget, built from the dense model and timed (thread CPU time,
    batch 64, 1 thread) against the dense one: the best share of the MAC promise any allocation reaches."""
    import copy
    import itertools

    from frugalnn.methods.class_pruning import ChannelGraph, MacModel, prune_channels

    dense, _, _ = load_pretrained("resnet20")
    dense.eval()
    x1, x = torch.zeros(1, 1, 28, 28), torch.randn(args.batch, 1, 28, 28)
    graph = ChannelGraph(dense, x1)
    macs, full = MacModel(graph), graph.counts()
    stream = {"stem.0": 0, "layer2.0.shortcut.0": 1, "layer3.0.shortcut.0": 2}  # residual-stream groups

    def counts(a: tuple, b: tuple) -> dict[str, int]:  # other groups are layerS.B.conv1
        return {g: a[stream[g]] if g in stream else b[int(g[5]) - 1] for g in full}

    def share(c: dict[str, int], rounds: int) -> float:
        """Measured speed-up of the dense model cut to widths ``c`` over the dense one ÷ its MAC promise."""
        pruned = prune_channels(copy.deepcopy(dense), x1, {g: list(range(c[g], full[g])) for g in c})
        ips = _speed_runtime({"dense": dense, "pruned": pruned}, x, "eager", rounds)
        return ips["pruned"] / ips["dense"] / (dense_macs / macs.macs(c))

    grid = [(4, 8, 12, 16), (8, 16, 24, 32), (8, 16, 24, 32, 40, 48, 56, 64)]
    dense_macs = macs.macs(full)
    out = []
    for keep in args.keeps:
        cands = [
            (a, b) for a in itertools.product(*grid) for b in itertools.product(*grid)
            if (1 - args.slack) * keep * dense_macs <= macs.macs(counts(a, b)) <= keep * dense_macs
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
        for r in mine[: args.top]:
            r["share_remeasured"] = share(counts(r["stream"], r["inner"]), args.rounds)
        best = max(mine[: args.top], key=lambda r: r["share_remeasured"])
        print(f"keep {keep}: best share {best['share_remeasured']:.2f} (scan {best['share_of_promise']:.2f}) at "
              f"stream {best['stream']} inner {best['inner']}", flush=True)  # fmt: skip
    config = {
        "batch": args.batch, "threads": 1, "clock": "thread", "grid": grid, "slack": args.slack, "top": args.top,
        "rounds": args.rounds,
    }  # fmt: skip
    record = make_record("class_pruning_stage_search", config=config, seed=None, data=None, results=out)
    write_record(RESULTS / "class_pruning_stage_search.json", record)


def main() -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="phase", required=True)
    g = sub.add_parser("grid")
    g.add_argument("--models", nargs="+", default=["resnet20", "vgg-small"])
    g.add_argument(
        "--methods", nargs="+", default=["class-aware", "l1", "taylor"], choices=[*VARIANTS, "dense"]
    )
    g.add_argument("--base", choices=("zoo", "snapshot"), default="zoo", help="snapshot: SAVE_DIR/base-MODEL")
    g.add_argument("--targets", nargs="+", type=float, default=[0.2])
    g.add_argument("--seeds", nargs="+", type=int, default=[0])
    g.add_argument("--round-to", type=int, default=4)
    g.add_argument("--tag", default="", help="write docs/results/class_pruning/class_pruning_TAG.json (parallel runs)")
    g.add_argument(
        "--budget",
        choices=sorted(BUDGETS),
        default="full",
        help="full: 700 steps; long: 1,400 + KD; xlong: 4,200 + KD",
    )
    g.add_argument("--distill", type=float, default=None, help="override the budget's distill_weight")
    m = sub.add_parser("merge")
    m.add_argument(
        "--tags", nargs="+", default=["resnet20", "vgg-small"], help="session 1: the snapshot grids"
    )
    w = sub.add_parser("widths")
    w.add_argument("--models", nargs="+", default=["resnet20", "vgg-small"])
    w.add_argument("--keeps", nargs="+", type=float, default=[0.4, 0.2, 0.1])
    w.add_argument("--round-tos", nargs="+", type=int, default=[1, 4, 8])
    w.add_argument("--batch", type=int, default=64)
    w.add_argument("--rounds", type=int, default=3)
    w.add_argument("--stem", default="class_pruning_widths", help="docs/results/STEM.json / .md")
    w.add_argument("--fold-bn", action="store_true", help="fold BN into the convs (torch.fx) before timing")
    w.add_argument(
        "--runtime",
        choices=("eager", "channels-last", "torchscript", "onnxruntime"),
        default="eager",
        help="where both models run: PyTorch eager (default), BN folded + channels-last, frozen TorchScript, "
        "or ONNX Runtime; always 1 thread",
    )
    w.add_argument(
        "--clock",
        choices=("thread", "wall"),
        default="thread",
        help="thread: CPU time of the computing thread (robust on a shared machine); wall: perf_counter",
    )
    ss = sub.add_parser("stage-search", help="best CPU share of the MAC promise over ResNet-20 stage widths")
    ss.add_argument("--keeps", nargs="+", type=float, default=[0.2])
    ss.add_argument("--slack", type=float, default=0.07, help="allocations within this share under budget")
    ss.add_argument("--batch", type=int, default=64)
    ss.add_argument("--top", type=int, default=10, help="re-time the best N allocations")
    ss.add_argument("--rounds", type=int, default=5, help="interleaved rounds when re-timing")
    pl = sub.add_parser("plan", help="run a JSON list of grid cells on several processes (GPU machine)")
    pl.add_argument("--plan", required=True)
    pl.add_argument("--rows", required=True, help="JSON-lines file the finished rows are appended to")
    pl.add_argument("--workers", type=int, default=2)
    pl.add_argument("--device", default="cpu")
    ir = sub.add_parser("import-rows", help="JSON lines from plan -> class_pruning_PREFIX-BUDGET.json")
    ir.add_argument("--rows", required=True)
    ir.add_argument("--prefix", default="gpu")
    s = sub.add_parser("speed")
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--tags", nargs="+", default=None, help="grid files to measure (default: all)")
    args = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    phases = {"grid": grid, "speed": speed_bench, "merge": merge, "widths": widths, "plan": plan,
              "import-rows": import_rows, "stage-search": stage_search}  # fmt: skip
    phases[args.phase](args)


if __name__ == "__main__":
    main()
