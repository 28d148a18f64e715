"""Dynamic batching in the server, on a real server (127.0.0.1, free port) and the official client:
concurrent greedy requests give the answers they give one at a time, streams get their own tokens,
and a client that hangs up or stops reading leaves the batch without stalling the others.

The tiny model runs in float64, so padding in the batch cannot move an argmax through rounding.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import openai
import pytest
import torch

from frugalnn.methods.livemind.batching import BatchedBackend
from frugalnn.methods.livemind.local import LocalBackend
from frugalnn.methods.livemind.server import ChatServer

PROMPTS = [
    "Name a colour.",
    "What is two plus two?",
    "Write one word about the sea, please, and nothing else at all.",
    "Hi",
    "Tell me a short story about a cat who lived in a very old library full of dusty books.",
    "Why is the sky blue?",
    "List three fruits.",
    "Say yes or no.",
]
LENGTHS = [5, 9, 13, 3, 17, 7, 11, 15]


@pytest.fixture(scope="module")
def model64(smol_tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    cfg = LlamaConfig(
        vocab_size=len(smol_tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    return LlamaForCausalLM(cfg).eval().to(torch.float64)


def _start(backend, **limits) -> tuple[ChatServer, openai.OpenAI]:
    srv = ChatServer(backend, "tiny", "127.0.0.1", 0, **limits)
    srv.start_background()
    return srv, openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def servers(model64, smol_tok):
    batched = _start(BatchedBackend(LocalBackend(model64, smol_tok), max_batch=8, window_s=0.05))
    single = _start(LocalBackend(model64, smol_tok))  # the one-at-a-time baseline (--max-batch 1)
    yield batched, single
    for srv, _ in (batched, single):
        srv.shutdown()
        srv.server_close()


def _ask(client: openai.OpenAI, i: int, **extra) -> str:
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": PROMPTS[i]}], max_tokens=LENGTHS[i], **extra
    )
    return reply.choices[0].message.content


def _together(fn, count: int) -> list:
    """Run fn(i) for i < count in threads released at once; results in order."""
    out: list = [None] * count
    gate = threading.Barrier(count)

    def go(i: int) -> None:
        gate.wait()
        out[i] = fn(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_eight_concurrent_greedy_requests_match_one_at_a_time(servers) -> None:
    (srv, client), (_, single) = servers
    alone = [_ask(client, i) for i in range(8)]
    baseline = [_ask(single, i) for i in range(8)]
    scheduler = srv.backend.scheduler
    steps, rows = scheduler.steps, scheduler.rows_stepped
    together = _together(lambda i: _ask(client, i), 8)
    assert together == alone == baseline
    assert all(together) and len(set(together)) == 8
    assert (scheduler.rows_stepped - rows) / (scheduler.steps - steps) > 2  # they really shared steps
    assert scheduler.reused_tokens > 0  # prompts started from the chat template's cached keys/values
    usage = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}])
    assert (
        usage.usage.prompt_tokens
        == single.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Hi"}]
        ).usage.prompt_tokens
    )


def test_concurrent_streams_each_get_their_own_tokens(servers) -> None:
    (_, client), (_, single) = servers

    def stream(i: int) -> list[str]:
        chunks = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": PROMPTS[i]}], max_tokens=LENGTHS[i],
            stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        return [c.choices[0].delta.content or "" for c in chunks if c.choices]

    pieces = _together(stream, 6)
    for i, parts in enumerate(pieces):
        assert "".join(parts) == _ask(single, i)
        assert sum(1 for p in parts if p) > 1  # tokens arrived as they were made, not in one piece
    seeded = {"n": 3, "temperature": 1.0, "seed": 11}  # per-choice generators: batching cannot change draws
    assert [c.message.content for c in client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=6, **seeded
    ).choices] == [c.message.content for c in single.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=6, **seeded
    ).choices]  # fmt: skip
    full = _ask(single, 4)
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut = _together(lambda i: _ask(client, 4, stop=[stop]) if i == 0 else _ask(client, i), 3)[0]
    assert cut == full[: full.find(stop)] and len(cut) < len(full)  # stop strings, inside a batch
    text = client.completions.create(model="tiny", prompt="The sky is", max_tokens=5, temperature=0)
    assert (
        text.choices[0].text
        == single.completions.create(model="tiny", prompt="The sky is", max_tokens=5, temperature=0)
        .choices[0]
        .text
    )


def _open_stream(srv: ChatServer, max_tokens: int, n: int = 1, rcvbuf: int | None = None) -> socket.socket:
    body = json.dumps(
        {"model": "tiny", "messages": [{"role": "user", "content": "Count."}], "max_tokens": max_tokens,
         "n": n, "stream": True}
    ).encode()  # fmt: skip
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect(srv.server_address[:2])
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def _settled(srv: ChatServer, limit_s: float) -> bool:
    """True once no job is running or waiting and every connection slot is free again."""
    scheduler, end = srv.backend.scheduler, time.monotonic() + limit_s
    while time.monotonic() < end:
        free = srv.slots._value == srv.slots._initial_value
        if free and not scheduler.batch.jobs and not scheduler.pending:
            return True
        time.sleep(0.02)
    return False


def test_a_client_that_hangs_up_mid_stream_leaves_the_batch(servers) -> None:
    (srv, client), (_, single) = servers
    cancelled = srv.backend.scheduler.cancelled
    sock = _open_stream(srv, max_tokens=1800)
    assert b" 200 " in sock.recv(64)
    done: list = []
    others = threading.Thread(target=lambda: done.extend(_together(lambda i: _ask(client, 4), 2)))
    others.start()  # two more requests join the batch beside the long stream
    sock.close()  # hangs up long before 1800 tokens
    others.join(30)
    assert done == [_ask(single, 4)] * 2
    start = time.monotonic()
    assert _settled(srv, 10), "the hung-up stream kept its row or its slot"
    assert time.monotonic() - start < 5 and srv.backend.scheduler.cancelled == cancelled + 1


def test_a_client_that_stops_reading_frees_its_slot(model64, smol_tok) -> None:
    srv, client = _start(
        BatchedBackend(LocalBackend(model64, smol_tok), max_batch=8, window_s=0.0),
        socket_timeout_s=0.5, max_connections=2,
    )  # fmt: skip
    try:
        sock = _open_stream(srv, max_tokens=400, n=8, rcvbuf=4096)  # ~600 kB of events, never read
        time.sleep(0.2)
        assert _ask(client, 1)  # served beside the stuck stream (2 connection slots)
        assert _settled(srv, 20), "a client that stops reading kept its slot"
        assert _ask(client, 3)
        received = b""
        while chunk := sock.recv(1 << 16):
            received += chunk
        assert b"data: [DONE]" not in received  # the server gave up on it (write timeout)
        sock.close()
    finally:
        srv.shutdown()
        srv.server_close()
