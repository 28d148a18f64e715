"""The server's OpenAI contract, driven by the official ``openai`` client: chat, streaming with usage,
stop, n with a seed, completions, content parts and the developer role, errors for what it cannot do,
and the limits that protect the process. References: a separate LocalBackend on the same model."""

from __future__ import annotations

import json
import socket
import time

import openai
import pytest

from frugalnn.methods.livemind.local import LocalBackend
from frugalnn.methods.livemind.server import ChatServer, StopScanner

MSG = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def served(tiny_lm, smol_tok):
    srv = ChatServer(LocalBackend(tiny_lm, smol_tok), "tiny", "127.0.0.1", 0, socket_timeout_s=1.0)
    srv.start_background()
    client = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=60)
    yield srv, client, LocalBackend(tiny_lm, smol_tok)  # the reference: its own cache
    srv.shutdown()
    srv.server_close()


def test_chat_and_stream_with_usage(served) -> None:
    _, client, ref = served
    want = ref.chat(MSG, max_new_tokens=8)
    reply = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=8)
    assert reply.choices[0].message.content == want and reply.usage.completion_tokens <= 8
    chunks = list(
        client.chat.completions.create(
            model="tiny", messages=MSG, max_tokens=8, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == want
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_stop_cuts_before_the_stop_string(served) -> None:
    _, client, ref = served
    full = ref.chat(MSG, max_new_tokens=16)
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop and full.find(stop) > 0
    for stream in (False, True):
        got = client.chat.completions.create(
            model="tiny", messages=MSG, max_tokens=16, stop=[stop], stream=stream
        )
        if stream:
            parts = list(got)
            text = "".join(c.choices[0].delta.content or "" for c in parts)
            finish = parts[-1].choices[0].finish_reason
        else:
            text, finish = got.choices[0].message.content, got.choices[0].finish_reason
        assert text == full[: full.find(stop)] and finish == "stop"


def test_n_choices_sampled_with_a_seed_are_reproducible(served) -> None:
    _, client, _ = served
    ask = {"model": "tiny", "messages": MSG, "max_tokens": 6, "n": 3, "temperature": 1.0, "seed": 7}
    first = [c.message.content for c in client.chat.completions.create(**ask).choices]
    again = [c.message.content for c in client.chat.completions.create(**ask).choices]
    other = [c.message.content for c in client.chat.completions.create(**{**ask, "seed": 8}).choices]
    assert first == again and len(first) == 3 and len(set(first)) > 1 and other != first


def test_completions_content_parts_developer_role_and_model_card(served) -> None:
    _, client, ref = served
    want = "".join(p.text for p in ref.stream_text("The sky is", max_new_tokens=5))
    got = client.completions.create(model="tiny", prompt="The sky is", max_tokens=5, temperature=0)
    assert got.choices[0].text == want and got.object == "text_completion"
    parts = [{"type": "text", "text": "Name a "}, {"type": "text", "text": "colour."}]
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": parts}]
    reference = ref.chat([{"role": "system", "content": "Be brief."}, *MSG], max_new_tokens=6)
    reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6)
    assert reply.choices[0].message.content == reference
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"temperature": "hot"}, "temperature"),
        ({"n": 0}, "n"),
    ],
)
def test_what_it_cannot_do_is_a_400_naming_the_field(served, extra, field) -> None:
    _, client, _ = served
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=MSG, max_tokens=2, **extra)
    assert err.value.body["param"] == field and field in err.value.body["message"]


def _raw(srv: ChatServer, head: bytes, body: bytes = b"") -> bytes:
    host, port = srv.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head + body)
        answer = b""
        while chunk := s.recv(65536):  # HTTP/1.0: the server closes after its answer
            answer += chunk
        return answer


def test_limits_content_length_timeout_and_busy(served, tiny_lm, smol_tok) -> None:
    srv, _, _ = served
    post = b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
    assert b" 400 " in _raw(srv, post + b"Content-Length: -5\r\n\r\n")
    assert b" 411 " in _raw(srv, post + b"\r\n")
    deep = b"[" * 100000 + b"]" * 100000
    assert b" 400 " in _raw(srv, post + f"Content-Length: {len(deep)}\r\n\r\n".encode(), deep)
    host, port = srv.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as silent:  # promises 100 bytes, sends 2
        silent.sendall(post + b"Content-Length: 100\r\n\r\n{}")
        start = time.monotonic()
        assert silent.recv(4096) == b""  # dropped after the 1 s socket timeout, not parked forever
        assert time.monotonic() - start < 5
    one = ChatServer(
        LocalBackend(tiny_lm, smol_tok), "tiny", "127.0.0.1", 0, max_connections=1, socket_timeout_s=2
    )
    one.start_background()
    try:
        with socket.create_connection(one.server_address[:2], timeout=10) as holder:
            holder.sendall(post + b"Content-Length: 100\r\n\r\n")  # holds the only slot
            time.sleep(0.2)
            answer = _raw(one, b"GET /v1/models HTTP/1.0\r\n\r\n")
            assert (
                b" 503 " in answer
                and json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "server_error"
            )
        time.sleep(2.5)  # the holder's slot is freed by its timeout
        assert b" 200 " in _raw(one, b"GET /v1/models HTTP/1.0\r\n\r\n")
    finally:
        one.shutdown()
        one.server_close()


def test_stop_scanner_against_a_plain_search() -> None:
    text = "the cat sat on the mat; the end"
    for stops in (["sat"], ["mat;", "cat"], ["zzz"], [";"]):
        for size in (1, 2, 5):
            scan = StopScanner(stops)
            out = "".join(scan.feed(text[i : i + size]) for i in range(0, len(text), size)) + scan.flush()
            cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
            assert out == text[:cut]


def test_serve_flags_fail_before_the_model_loads(capsys) -> None:
    from frugalnn.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--port", str(port)], "cannot listen on 127.0.0.1"),
            (["--port", "70000"], "--port must be 0..65535"),
            (["--host", "no-such-host.invalid"], "is not a known address"),
            (["--default-temperature", "3"], "--default-temperature must be from 0 to 2"),
        ]
        for extra, message in cases:  # --model names nothing loadable: reaching it would fail otherwise
            assert main(["serve", "--model", "/nonexistent-model", *extra]) == 2
            err = capsys.readouterr().err
            assert message in err and len(err.strip().splitlines()) == 1
