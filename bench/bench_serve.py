"""Server benchmark: requests/s and p50/p95 latency of ``frugalnn serve`` with dynamic batching
against the one-at-a-time server (``--max-batch 1``), for 1, 4 and 8 concurrent clients.

    .venv/bin/python bench/bench_serve.py [--requests 24] [--max-tokens 32]   # -> docs/results/serve/

SmolLM2-135M-Instruct, fp32, 1 torch thread, greedy, a fixed ``max_tokens``. Prompts are real: each
asks for a one-line summary of the first sentence of an article of the Lee news corpus. Both servers
run in this process (stdlib ``ThreadingHTTPServer`` threads on 127.0.0.1, one shared model) and the
clients are threads here too, sending plain HTTP/1.0 JSON requests; each concurrency level runs the
one-at-a-time server first, then the batching one, on the same prompts. Both reuse the keys/values of
the prompt prefix shared with the previous request (the chat template's system prompt and the
instruction): the one-at-a-time server through ``LocalBackend``'s cache, the batching one through its
scheduler. The batching server's answers
are compared with the one-at-a-time server's (greedy, so they should match token for token, up to
float rounding that padding can change).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import torch

from frugalnn.core.data.text import load_text
from frugalnn.core.llm import load_causal_lm
from frugalnn.core.report import line_plot, make_record, markdown_table, write_markdown, write_record
from frugalnn.methods.livemind.batching import BatchedBackend
from frugalnn.methods.livemind.local import LocalBackend
from frugalnn.methods.livemind.server import ChatServer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "serve"


def prompts_from_lee(count: int) -> tuple[list[str], dict[str, Any]]:
    """One question per article: summarise its first sentence (cut to 40 words)."""
    data = load_text("lee")
    questions = []
    for line in data.text.splitlines():
        first = line.strip().split(". ")[0]
        words = first.split()
        if len(words) >= 8:
            questions.append(f"Summarise this news in one short line: {' '.join(words[:40])}.")
        if len(questions) == count:
            break
    return questions, data.identity


def _ask(port: int, question: str, max_tokens: int) -> tuple[float, str, int]:
    body = json.dumps(
        {"model": "smollm2", "messages": [{"role": "user", "content": question}],
         "max_tokens": max_tokens, "temperature": 0}
    )  # fmt: skip
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    reply = conn.getresponse()
    data = json.loads(reply.read())
    conn.close()
    seconds = time.perf_counter() - start
    if reply.status != 200:
        raise RuntimeError(f"server answered {reply.status}: {data}")
    return seconds, data["choices"][0]["message"]["content"], data["usage"]["completion_tokens"]


def run_load(port: int, questions: list[str], clients: int, max_tokens: int) -> dict[str, Any]:
    """``clients`` threads take the questions in turn; latency per request, overall requests/s."""
    answers: list[Any] = [None] * len(questions)
    lock, cursor = threading.Lock(), [0]

    def worker() -> None:
        while True:
            with lock:
                i = cursor[0]
                cursor[0] += 1
            if i >= len(questions):
                return
            answers[i] = _ask(port, questions[i], max_tokens)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies = sorted(a[0] for a in answers)
    tokens = sum(a[2] for a in answers)
    return {
        "requests": len(questions),
        "wall_s": wall,
        "requests_per_s": len(questions) / wall,
        "tokens_per_s": tokens / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
        "mean_completion_tokens": tokens / len(questions),
        "answers": [a[1] for a in answers],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--clients", default="1,4,8", help="comma-separated concurrency levels")
    parser.add_argument("--requests", type=int, default=24, help="requests per concurrency level and server")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-window-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    try:
        levels = [int(c) for c in args.clients.split(",")]
    except ValueError:
        parser.error(f"--clients must be comma-separated whole numbers, got {args.clients!r}")
    if min(levels) < 1 or args.requests < 1 or args.max_tokens < 1 or args.max_batch < 2:
        parser.error("--clients, --requests and --max-tokens must be positive, --max-batch at least 2")
    torch.set_num_threads(args.threads)
    questions, identity = prompts_from_lee(args.requests)
    model, tok = load_causal_lm(args.model)
    single = ChatServer(LocalBackend(model, tok), "smollm2", "127.0.0.1", 0, max_connections=64)
    batched_backend = BatchedBackend(
        LocalBackend(model, tok), max_batch=args.max_batch, window_s=args.batch_window_ms / 1000
    )
    batched = ChatServer(batched_backend, "smollm2", "127.0.0.1", 0, max_connections=64)
    servers = {"one at a time (--max-batch 1)": single, f"batching (--max-batch {args.max_batch})": batched}
    for srv in servers.values():
        srv.start_background()
        _ask(srv.server_address[1], questions[0], 4)  # warm-up
    rows, results = [], {}
    try:
        for clients in levels:
            reference = None
            for label, srv in servers.items():
                steps, stepped = batched_backend.scheduler.steps, batched_backend.scheduler.rows_stepped
                res = run_load(srv.server_address[1], questions, clients, args.max_tokens)
                if srv is batched:
                    n = batched_backend.scheduler.steps - steps
                    res["mean_batch"] = (batched_backend.scheduler.rows_stepped - stepped) / max(1, n)
                    res["same_answers"] = sum(a == b for a, b in zip(res["answers"], reference))
                else:
                    reference = res["answers"]
                results[f"{label} | {clients}"] = res
                rows.append(
                    {"server": label, "clients": clients, "req/s": res["requests_per_s"],
                     "tok/s": res["tokens_per_s"], "p50 s": res["p50_s"], "p95 s": res["p95_s"],
                     "mean batch": res.get("mean_batch"),
                     "same answers": f"{res['same_answers']}/{len(questions)}" if "same_answers" in res else "—"}
                )  # fmt: skip
                print(rows[-1], flush=True)
    finally:
        for srv in servers.values():
            srv.shutdown()
            srv.server_close()
    config = {**{k: v for k, v in vars(args).items() if k != "out"}, "clients": levels}
    config["setup"] = "servers and client threads in one process; fp32; greedy; HTTP/1.0 on 127.0.0.1"
    record = make_record(
        "serve",
        config=config,
        seed=None,
        data={**identity, "prompts": len(questions), "first_prompt": questions[0]},
        results={"rows": rows, "runs": results},
        about="OpenAI-compatible server: dynamic batching against one request at a time, SmolLM2-135M",
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_record(args.out / "serve.json", record)
    table = markdown_table(rows, digits=2)
    write_markdown(
        args.out / "serve.md",
        "# Server throughput and latency: dynamic batching vs one at a time\n\n"
        f"SmolLM2-135M-Instruct, fp32, {args.threads} torch thread(s), greedy, max_tokens {args.max_tokens}, "
        f"{len(questions)} requests per row (Lee news summaries), servers and clients in one process.\n"
        f"Command: `{record['command']}`\n\n" + table,
    )
    for metric, label in (("requests_per_s", "requests/s"), ("p50_s", "p50 latency (s)")):
        line_plot(
            args.out / f"serve_{metric.split('_')[0]}.png",
            {name: (levels, [results[f"{name} | {c}"][metric] for c in levels]) for name in servers},
            xlabel="concurrent clients",
            ylabel=label,
            title=f"SmolLM2-135M server, {args.max_tokens} tokens, {args.threads} thread",
        )
    print(table)


if __name__ == "__main__":
    main()
