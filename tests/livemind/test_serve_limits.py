"""The server's limits (a batching server on 127.0.0.1, free port, tiny model): Content-Length checked
before the body is read, max_tokens capped, the generation time limit, malformed or deep JSON and
mistyped fields are 400s; and ``frugalnn serve`` flags that fail in one line before the model loads."""

from __future__ import annotations

import json
import socket
import time
import types

import openai
import pytest

from frugalnn.methods.livemind.batching import BatchedBackend
from frugalnn.methods.livemind.local import LocalBackend
from frugalnn.methods.livemind.server import ChatServer

MSG = [{"role": "user", "content": "Name a colour."}]
POST = b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def limited(tiny_lm, smol_tok):
    backend = BatchedBackend(LocalBackend(tiny_lm, smol_tok), max_batch=4, window_s=0.0)
    srv = ChatServer(backend, "tiny", "127.0.0.1", 0, max_tokens_limit=64, socket_timeout_s=3.0)
    srv.start_background()
    yield srv, openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=30)
    srv.shutdown()
    srv.server_close()


def _raw(srv: ChatServer, data: bytes) -> tuple[bytes, float]:
    """The whole answer to ``data`` (the server closes after it) and how long it took."""
    start = time.monotonic()
    with socket.create_connection(srv.server_address[:2], timeout=10) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer, time.monotonic() - start


@pytest.mark.parametrize(
    ("length", "status"), [("-1", 400), ("abc", 400), ("1e3", 400), (str(10**12), 413), ("", 400)]
)
def test_content_length_is_refused_before_the_body_is_read(limited, length, status) -> None:
    srv, _ = limited
    answer, seconds = _raw(srv, POST + f"Content-Length: {length}\r\n\r\n".encode())  # no body follows
    assert f" {status} ".encode() in answer.split(b"\r\n", 1)[0]
    assert seconds < 1.5  # answered at once, not after waiting for a body (socket timeout 3 s)
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [b"[" * 50000, b'{"a":' * 50000, b"[" * 50000 + b"]" * 50000, b'{"model": "tiny", "messages": [}'],
)
def test_malformed_or_deep_json_is_a_400(limited, body) -> None:
    srv, _ = limited
    answer, _ = _raw(srv, POST + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert b" 400 " in answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": [1]}, "top_p"),
        ({"max_tokens": "5"}, "max_tokens"),
        ({"max_tokens": 65}, "max_tokens"),  # over the server's cap (64)
        ({"max_completion_tokens": 1000}, "max_completion_tokens"),
        ({"seed": 1.5}, "seed"),
        ({"stop": 3}, "stop"),
    ],
)
def test_mistyped_or_over_the_cap_fields_are_400s(limited, extra, field) -> None:
    _, client = limited
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=MSG, **extra)
    assert err.value.body["param"] == field
    with pytest.raises(openai.BadRequestError):  # the completions endpoint checks the same way
        client.completions.create(model="tiny", prompt="Hi", extra_body=extra)


def test_generation_time_limit_ends_with_length(limited, tiny_lm, smol_tok) -> None:
    srv, client = limited
    srv.generation_timeout_s = 0.0  # every generation is over its time after the first token
    try:
        reply = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=64)
    finally:
        srv.generation_timeout_s = 300.0
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens < 64
    assert client.chat.completions.create(model="tiny", messages=MSG, max_tokens=3).usage.completion_tokens


class _NoBind:
    """A socket whose bind fails as it does for a user who may not bind a port below 1024."""

    def __init__(self, *args: object) -> None:
        pass

    def __enter__(self) -> _NoBind:
        return self

    def __exit__(self, *args: object) -> None:
        pass

    def setsockopt(self, *args: object) -> None:
        pass

    def bind(self, address: object) -> None:
        raise PermissionError(13, "Permission denied")


def test_serve_flags_fail_in_one_line_before_the_model_loads(capsys, monkeypatch) -> None:
    from frugalnn.cli import main
    from frugalnn.commands import serve

    for extra, message in [
        (["--max-batch", "0"], "--max-batch"),
        (["--batch-window-ms", "-1"], "--batch-window-ms"),
        (["--batch-window-ms", "nan"], "--batch-window-ms"),
    ]:
        with pytest.raises(SystemExit) as stop:
            main(["serve", "--model", "/nonexistent-model", *extra])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    fake = types.SimpleNamespace(**{k: getattr(socket, k) for k in dir(socket) if not k.startswith("_")})
    fake.socket = _NoBind
    monkeypatch.setattr(serve, "socket", fake)
    assert main(["serve", "--model", "/nonexistent-model", "--port", "80"]) == 2
    err = capsys.readouterr().err
    assert "--port 80 needs privileges" in err and len(err.strip().splitlines()) == 1


def test_serve_command_picks_the_batching_backend(write_tiny_llama, smol_tok, tmp_path, monkeypatch, capsys):
    from frugalnn.cli import main
    from frugalnn.methods.livemind.server import ChatServer as Server

    folder = write_tiny_llama(tmp_path / "tiny", smol_tok)
    seen = []

    def serve_once(self: Server, *args: object) -> None:
        seen.append(type(self.backend).__name__)
        raise KeyboardInterrupt  # as Ctrl-C right after start

    monkeypatch.setattr(Server, "serve_forever", serve_once)
    for flags, kind in (
        (["--max-batch", "4", "--batch-window-ms", "0"], "BatchedBackend"),
        (["--max-batch", "1"], "LocalBackend"),
    ):
        assert main(["serve", "--model", str(folder), "--port", "0", *flags]) == 0
        assert seen[-1] == kind
    out = capsys.readouterr().out
    assert "batches of up to 4" in out and "one request at a time" in out
