"""Reliability trials, writing docs/results/reliability/ (one JSON part per trial kind, then the report).

Parts (run one or several; ``--part report`` merges the parts present into reliability.{json,md}):
  sweep   every sub-command x generated bad inputs (frugalnn.core.contract): clean / traceback /
          accepted / hung / untidy / unnamed counts per command;
  train   ``frugalnn train`` (mlp on digits, a few epochs, frequent resumable states) killed with SIGKILL
          at random times, rerun to the end: final weights vs an uninterrupted run, leftovers;
  llm     ``frugalnn llm compress`` on a tiny random Llama (SmolLM2's tokenizer), same protocol: the real
          SmolLM2-135M takes minutes per run on this shared 2-core machine, 20+ kills would take hours;
  server  ``frugalnn serve`` (the tiny Llama) on 127.0.0.1: RSS and thread count while it answers
          1,000 abusive requests.
Run: PYTHONPATH=src .venv/bin/python bench/bench_reliability.py --part sweep train llm server report
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = [sys.executable, "-m", "frugalnn.cli"]
LEFTOVER = (".partial", ".tmp", ".old")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def _tiny_llama(folder: Path) -> Path:
    """A 2-layer random Llama over SmolLM2's tokenizer (as tests/conftest.py's write_tiny_llama)."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from frugalnn.core import llm

    tok = AutoTokenizer.from_pretrained(str(llm._bundled_folder("smollm2")))  # noqa: SLF001
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    llm.save_causal_lm(LlamaForCausalLM(config).eval(), tok, folder)
    return folder


# ----------------------------------------------------------------------------- bad-input sweep
def part_sweep(work: Path, llm_folder: Path) -> dict:
    from frugalnn.core import contract

    paths = contract.make_fixtures(work / "fixtures", llm_folder)
    per: dict[str, dict] = {}
    named: list[str] = []
    for name, parser in contract.commands().items():
        outcomes = [contract.run_case(c, paths, work / "case", 30) for c in contract.cases(name, parser)]
        counts = Counter(o.status for o in outcomes)
        per[name] = {
            "tried": len(outcomes),
            **dict(counts),
            "seconds": round(sum(o.seconds for o in outcomes), 1),
        }
        named += [
            f"{name} {o.case.flag} {o.case.value!r}: {o.status} {o.notes}"
            for o in outcomes
            if o.status != "clean"
        ]
        print(f"{name:22s} {per[name]}", flush=True)
    return {"per_command": per, "not_clean": named, "pass_through": contract.PASS_THROUGH}


# ----------------------------------------------------------------------------- kill and resume
def _digest(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and (not names or p.name in names)
    }


def _leftovers(place: Path) -> list[str]:
    return sorted(p.relative_to(place).as_posix() for p in place.rglob("*") if p.name.endswith(LEFTOVER))


def kill_trials(
    argv: list[str],
    out_flag: int,
    compare: tuple[str, ...],
    trials: int,
    seed: int,
    work: Path,
    resumable: bool,
) -> dict:
    """Uninterrupted reference, then ``trials`` runs killed at a random time and rerun to the end."""
    rng = random.Random(seed)
    ref_dir = work / "ref" / "out"
    shutil.rmtree(work, ignore_errors=True)
    ref_dir.parent.mkdir(parents=True)

    def command(out: Path) -> list[str]:
        return [*PY, *argv[:out_flag], str(out), *argv[out_flag:]]

    start = time.perf_counter()
    subprocess.run(command(ref_dir), env=_env(), check=True, capture_output=True)
    ref_s = time.perf_counter() - start
    reference = _digest(ref_dir, compare)
    rows = []
    for i in range(trials):
        place = work / f"trial{i:02d}"
        place.mkdir()
        out = place / "out"
        kill_at = rng.uniform(0.5, ref_s)
        proc = subprocess.Popen(
            command(out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            proc.wait(timeout=kill_at)
            killed = False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = True
        left_after_kill = _leftovers(place)
        # a folder-writing command whose folder is complete had finished before the kill landed: the same
        # command again is refused by the --out rules, so only a resumable one (train) is rerun then
        finished = out.is_dir() and not resumable
        rerun = subprocess.run(
            ["true"] if finished else command(out), env=_env(), capture_output=True, text=True
        )
        got = _digest(out, compare) if out.is_dir() else {}
        rows.append({
            "trial": i, "kill_at_s": round(kill_at, 2), "killed": killed, "finished_before_kill": finished,
            "left_after_kill": left_after_kill, "rerun_exit": rerun.returncode,
            "rerun_error": rerun.stderr.strip().splitlines()[-1] if rerun.returncode else "",
            "identical": got == reference, "leftovers": _leftovers(place),
        })  # fmt: skip
        print(f"  trial {i:2d}: kill at {kill_at:5.1f} s -> {rows[-1]}", flush=True)
        shutil.rmtree(place, ignore_errors=True)
    return {
        "command": " ".join(["frugalnn", *argv[:out_flag], "OUT", *argv[out_flag:]]),
        "reference_s": round(ref_s, 1),
        "compared_files": sorted(reference),
        "trials": rows,
        "killed": sum(r["killed"] for r in rows),
        "finished_before_kill": sum(r["finished_before_kill"] for r in rows),
        "identical": sum(r["identical"] for r in rows),
        "rerun_failed": sum(r["rerun_exit"] != 0 for r in rows),
        "with_leftovers": sum(bool(r["leftovers"]) for r in rows),
    }


# ----------------------------------------------------------------------------- server abuse
def _status(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


def _send(port: int, raw: bytes, read: bool = True) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        if not read:
            return "sent"
        try:
            head = s.recv(64)
        except (TimeoutError, ConnectionError):
            return "no reply"
    first = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("latin-1").replace("|", "/").strip()
    return first or "closed"


def _post(body: bytes, length: int | str | None = None, path: str = "/v1/chat/completions") -> bytes:
    n = len(body) if length is None else length
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n".encode()
        + body
    )


ABUSE = {
    "negative length": lambda: _post(b"{}", -5),
    "non-numeric length": lambda: _post(b"{}", "lots"),
    "oversized length": lambda: _post(b"{}", 10**12),
    "malformed JSON": lambda: _post(b'{"model": "tiny", "messages": ['),
    "deep JSON": lambda: _post(b"[" * 100_000 + b"]" * 100_000),
    "temperature hot": lambda: _post(json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}).encode()),
    "huge max_tokens": lambda: _post(json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**9}).encode()),
    "unknown path": lambda: _post(b"{}", path="/v1/../../etc/passwd"),
    "binary garbage": lambda: os.urandom(512),
    "valid, 2 tokens": lambda: _post(json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode()),
}  # fmt: skip


def part_server(llm_folder: Path, requests: int, seed: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [*PY, "serve", "--model", str(llm_folder), "--name", "tiny", "--port", str(port),
            "--socket-timeout-s", "2", "--max-connections", "8"]  # fmt: skip
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if _send(port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n").startswith("HTTP/1"):
                    break
            except OSError:
                time.sleep(0.5)
        rng = random.Random(seed)
        kinds = list(ABUSE)
        samples, outcomes = [], Counter()
        samples.append({"after": 0, "rss_kb": _status(proc.pid)[0], "threads": _status(proc.pid)[1]})
        start = time.perf_counter()
        for i in range(1, requests + 1):
            kind = rng.choice(kinds)
            try:
                reply = _send(port, ABUSE[kind]())
            except OSError as err:
                reply = type(err).__name__
            outcomes[f"{kind}: {reply[:32]}"] += 1
            if i % (requests // 4) == 0:
                time.sleep(3)  # connections dropped by the 2 s socket timeout have ended
                rss, threads = _status(proc.pid)
                samples.append({"after": i, "rss_kb": rss, "threads": threads})
                print(f"  after {i} requests: RSS {rss / 1024:.1f} MiB, {threads} threads", flush=True)
        alive = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "requests": requests,
        "seconds": round(time.perf_counter() - start, 1),
        "samples": samples,
        "outcomes": dict(sorted(outcomes.items())),
        "alive_after": alive,
        "rss_growth_kb": samples[-1]["rss_kb"] - samples[1]["rss_kb"],
        "thread_growth": samples[-1]["threads"] - samples[1]["threads"],
    }


# ----------------------------------------------------------------------------- report
REMAINING = [
    "Code execution from data files is not measured here: it is covered by the security tests (CIFAR batches "
    "through a restricted unpickler, Liberty functions parsed by a grammar, weights_only torch.load); the "
    "sweep's corrupt-JSON, random-bytes safetensors and non-UTF-8 inputs only show that such files are refused.",
    "`lm-eval` hands every argument to lm_eval's own parser (its usage errors are cut to the one error "
    "line); it has no options of its own, so one bad input is generated for it.",
    "Commands with few options get fewer than 15 bad inputs (assets fetch, assets list, lm-eval, llm info): "
    "every kind of bad value of every option they have is tried; there is nothing further to generate.",
    "A privileged port (80) is only a bad input for a user who may not bind it; the sweep runs as root here, "
    "so that case is generated only for other users. Ports in use, negative and above 65535 are tried.",
    "Large but valid sizes (e.g. `--epochs 100000000`) are accepted and run long: the parser-wide limit is "
    "+-(2**31-1); options have no caps beyond their own validation.",
    "Non-UTF-8 text on stdin (`frugalnn live` without --model reads typed text) is not part of the sweep.",
    "Kill points are uniform over the whole run, interpreter start-up included (about 3 s); none of the train "
    "kills landed inside a state write, so 'left right after the kill' is 0 there; the leftover removal is "
    "also covered by tests/core/test_cli_contract.py::test_atomic_output_dir_empty_folder_and_leftovers.",
    "Commands that write their checkpoint into the folder in place (basisn train, early-exit, logic) replace "
    "the files they write when --overwrite is given; other files already in that folder stay.",
    "The server loop sends fast abusive requests; slow bodies and clients that stop reading a stream are "
    "covered by the server's own tests (tests/livemind), not by the 1,000-request figure.",
]


def write_report(out: Path, parts: dict[str, dict], seed: int) -> None:
    from frugalnn.core.io import atomic_write_text
    from frugalnn.core.report import make_record, markdown_table, write_record

    lines = [
        "# Reliability trials\n\n",
        "Written by `bench/bench_reliability.py`; record: reliability.json.\n",
    ]
    results: dict = {}
    if "sweep" in parts:
        per = parts["sweep"]["per_command"]
        rows = [{"command": k, **{s: v.get(s, 0) for s in ("tried", "clean", "traceback", "accepted", "hung", "untidy", "unnamed")}} for k, v in per.items()]  # fmt: skip
        total = Counter()
        for r in rows:
            total.update({k: v for k, v in r.items() if k != "command"})
        results["sweep_total"] = dict(total)
        lines += ["\n## Bad inputs per command\n\nclean = exit 2, one line on stderr naming the option or value, no "
                  "traceback, nothing at --out. Generated by frugalnn.core.contract (the contract test's table).\n\n",
                  markdown_table([*rows, {"command": "**all**", **total}])]  # fmt: skip
        if parts["sweep"]["not_clean"]:
            lines.append("\nNot clean:\n\n" + "".join(f"- {n}\n" for n in parts["sweep"]["not_clean"]))
        for cmd, why in parts["sweep"]["pass_through"].items():
            lines.append(
                f"\n`{cmd}` passes its arguments on: {why}; counted clean on exit 2 without a traceback.\n"
            )
    for key, title in (("train", "frugalnn train"), ("llm", "frugalnn llm compress")):
        if key in parts:
            p = parts[key]
            results[key] = {k: p[k] for k in ("killed", "identical", "rerun_failed", "with_leftovers")} | {
                "trials": len(p["trials"])
            }
            lines += [f"\n## Kill and resume: {title}\n\n`{p['command']}` (uninterrupted: {p['reference_s']} s). "
                      f"{len(p['trials'])} trials, SIGKILL at a uniform random time, then the same command again.\n\n",
                      f"- killed before exiting: {p['killed']} (of which the output was already complete: "
                      f"{p.get('finished_before_kill', 0)})\n- kill times: {min(r['kill_at_s'] for r in p['trials'])}-"
                      f"{max(r['kill_at_s'] for r in p['trials'])} s (interpreter start-up is about 3 s of it)\n- final files identical to the uninterrupted run "
                      f"({', '.join(p['compared_files'])}): {p['identical']}/{len(p['trials'])}\n"
                      f"- reruns that failed: {p['rerun_failed']}\n- trials with .partial/.tmp/.old left after the rerun: "
                      f"{p['with_leftovers']}\n- entries left right after the kill (removed by the rerun): "
                      f"{sum(bool(r['left_after_kill']) for r in p['trials'])} trials\n"]  # fmt: skip
    if "server" in parts:
        s = parts["server"]
        results["server"] = {k: s[k] for k in ("requests", "rss_growth_kb", "thread_growth", "alive_after")}
        lines += [f"\n## Server under abuse\n\n`frugalnn serve` (tiny Llama, --socket-timeout-s 2, --max-connections 8) "
                  f"on 127.0.0.1: {s['requests']} abusive requests in {s['seconds']} s; alive after: {s['alive_after']}.\n\n",
                  markdown_table([{"after requests": x["after"], "RSS MiB": round(x["rss_kb"] / 1024, 1), "threads": x["threads"]} for x in s["samples"]]),
                  f"\nRSS growth from request 250 to {s['requests']}: {s['rss_growth_kb'] / 1024:.1f} MiB; thread growth: "
                  f"{s['thread_growth']} (the first quarter includes the first generations' one-time allocations: "
                  f"{(s['samples'][1]['rss_kb'] - s['samples'][0]['rss_kb']) / 1024:.1f} MiB). A request line of binary "
                  "garbage is answered by http.server's HTTP/0.9 error page (no status line).\n\n",
                  markdown_table([{"request: first reply line": k, "count": v} for k, v in s["outcomes"].items()])]  # fmt: skip
    lines.append("\n## Remaining cases\n\n" + "".join(f"- {r}\n" for r in REMAINING))
    total = results.get("sweep_total", {})
    kills = "; ".join(f"{k}: {results[k]['identical']}/{results[k]['trials']} kills resumed identical, "
                      f"{results[k]['with_leftovers']} with leftovers" for k in ("train", "llm") if k in results)  # fmt: skip
    server = results.get("server", {})
    about = (
        f"bad inputs {total.get('tried', 0)}: {total.get('clean', 0)} clean, {total.get('traceback', 0)} tracebacks, "
        f"{total.get('accepted', 0)} accepted, {total.get('hung', 0)} hung; {kills}; server after "
        f"{server.get('requests', 0)} abusive requests: RSS +{server.get('rss_growth_kb', 0) / 1024:.1f} MiB, "
        f"threads +{server.get('thread_growth', 0)}"
    )
    record = make_record("reliability", about=about,
                         command="bench/bench_reliability.py --part sweep train llm server report", config={"parts": sorted(parts)}, seed=seed,
                         data={"fixtures": "generated (frugalnn.core.contract.make_fixtures); digits; tiny random Llama"},
                         results={**results, "parts": parts})  # fmt: skip
    write_record(out / "reliability.json", record)
    atomic_write_text(out / "reliability.md", "".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", nargs="+", choices=("sweep", "train", "llm", "server", "report"), required=True)
    p.add_argument("--trials", type=int, default=20, help="kill points per command (default 20)")
    p.add_argument("--requests", type=int, default=1000, help="abusive requests to the server (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "reliability")
    args = p.parse_args()
    if not 1 <= args.trials <= 1000 or not 4 <= args.requests <= 100_000 or not 0 <= args.seed < 2**32:
        p.error("--trials lies in [1, 1000], --requests in [4, 100000], --seed in [0, 2**32)")
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out} is a file; give a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    from frugalnn.core.io import atomic_write_json

    with tempfile.TemporaryDirectory(prefix="frugalnn-reliability-") as tmp:
        work = Path(tmp)
        llm_folder = _tiny_llama(work / "tiny-llama") if set(args.part) & {"sweep", "llm", "server"} else None
        for part in args.part:
            if part == "report":
                continue
            start = time.perf_counter()
            if part == "sweep":
                result = part_sweep(work / "sweep", llm_folder)
            elif part == "train":
                argv = ["train", "--model", "mlp", "--data", "digits", "--epochs", "4", "--checkpoint-every", "3",
                        "--no-augment", "--seed", str(args.seed), "--out"]  # fmt: skip
                result = kill_trials(
                    argv, len(argv), ("model.safetensors",), args.trials, args.seed, work / "train", True
                )
            elif part == "llm":
                argv = ["llm", "compress", "--model", str(llm_folder), "--ratio", "0.3", "--calib-windows", "8",
                        "--window", "64", "--out"]  # fmt: skip
                result = kill_trials(
                    argv,
                    len(argv),
                    ("model.safetensors", "config.json"),
                    args.trials,
                    args.seed,
                    work / "llm",
                    False,
                )
                result["command"] = result["command"].replace(str(llm_folder), "TINY_LLAMA")
            else:
                result = part_server(llm_folder, args.requests, args.seed)
            result["wall_s"] = round(time.perf_counter() - start, 1)
            atomic_write_json(args.out / f"part_{part}.json", result)
            print(f"{part}: done in {result['wall_s']} s", flush=True)
    if "report" in args.part:
        parts = {f.stem[5:]: json.loads(f.read_text()) for f in sorted(args.out.glob("part_*.json"))}
        write_report(args.out, parts, args.seed)
        print((args.out / "reliability.md").read_text())


if __name__ == "__main__":
    main()
