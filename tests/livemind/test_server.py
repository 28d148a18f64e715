"""`frugalnn serve` on loopback with the real SmolLM2: the OpenAI chat-completions shape, streaming,
bad input (4xx + OpenAI-style error, server keeps serving), a client that hangs up mid-stream."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from frugalnn.core.llm import generate_chat
from frugalnn.methods.livemind import BackendError, HTTPBackend, chat
from frugalnn.methods.livemind.local import LocalBackend
from frugalnn.methods.livemind.server import ChatServer

MSG = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def server(smollm2):
    model, tok = smollm2
    srv = ChatServer(
        LocalBackend(model, tok, name="smollm2"), "smollm2", "127.0.0.1", 0, max_tokens_limit=512
    )
    srv.start_background()
    yield srv
    srv.shutdown()
    srv.server_close()


def _post(url, body, raw=False):
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(
        url + "/chat/completions", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_non_streaming_shape_and_text_match_core_generate_chat(server, smollm2):
    status, text = _post(server.url, {"model": "smollm2", "messages": MSG, "max_tokens": 5})
    assert status == 200
    body = json.loads(text)
    assert (
        body["object"] == "chat.completion"
        and body["model"] == "smollm2"
        and body["id"].startswith("chatcmpl-")
    )
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop", "length")
    assert body["usage"]["completion_tokens"] <= 5 and body["usage"]["prompt_tokens"] > 5
    reference = generate_chat(*smollm2, MSG, max_new_tokens=5)  # independent: HF generate, no shared cache
    assert choice["message"]["content"] == reference


def test_streaming_sse_with_plain_urllib_and_the_client(server):
    req = urllib.request.Request(
        server.url + "/chat/completions",
        data=json.dumps({"model": "smollm2", "messages": MSG, "max_tokens": 5, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        lines = [ln.decode().strip() for ln in r if ln.strip()]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[5:]) for ln in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    client = HTTPBackend(server.url, "smollm2")
    assert client.models() == ["smollm2"]
    assert chat(client, MSG, max_new_tokens=5) == streamed
    assert client.complete(MSG, max_new_tokens=5)["choices"][0]["message"]["content"] == streamed


def test_bad_requests_get_4xx_and_the_server_keeps_serving(server):
    cases = [
        (b"{not json", 400),
        (json.dumps({"model": "smollm2"}).encode(), 400),  # no messages
        (json.dumps({"messages": MSG}).encode(), 400),  # no model
        (json.dumps({"model": "gpt-9", "messages": MSG}).encode(), 404),
        (json.dumps({"model": "smollm2", "messages": MSG, "max_tokens": 10**9}).encode(), 400),
        (json.dumps({"model": "smollm2", "messages": [{"role": "robot", "content": "x"}]}).encode(), 400),
        (json.dumps([1, 2]).encode(), 400),
    ]
    for payload, code in cases:
        status, text = _post(server.url, payload, raw=True)
        assert status == code, payload
        err = json.loads(text)["error"]
        assert err["message"] and err["type"] == "invalid_request_error"
    with pytest.raises(BackendError, match="404"):
        chat(HTTPBackend(server.url, "no-such-model"), MSG, max_new_tokens=2)
    assert _post(server.url, {"model": "smollm2", "messages": MSG, "max_tokens": 2})[0] == 200


def test_client_hanging_up_mid_stream(server):
    host, port = server.server_address[:2]
    body = json.dumps({"model": "smollm2", "messages": MSG, "max_tokens": 200, "stream": True}).encode()
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert b"200" in sock.recv(64)
    # the server stops that generation and answers the next request
    assert _post(server.url, {"model": "smollm2", "messages": MSG, "max_tokens": 2})[0] == 200


def test_client_reports_an_unreachable_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match="cannot reach"):
        HTTPBackend(f"http://127.0.0.1:{port}", "smollm2", timeout_s=2).models()


def test_live_command_over_the_server_with_piped_input(server, monkeypatch, capsys):
    """`frugalnn live --url ...` with piped input: one question, inference steps, then the answer."""
    import io

    from frugalnn.cli import main

    question = "A ball is dropped from a tower. It falls for two seconds. How far does it fall?\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(question))
    code = main(["live", "--url", server.url, "--model", "smollm2", "--max-tokens", "3"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("> A ball is dropped") and "s after the last word" in out


def test_livemind_through_the_http_client(server):
    """The controller runs unchanged over the HTTP backend (choice + forced prefix via the server)."""
    from frugalnn.methods.livemind import Config, LiveMindController, simulate_livemind

    cfg = Config(chars_per_minute=6000.0, max_inference_tokens=3, max_new_tokens=3)
    client = HTTPBackend(server.url, "smollm2")
    run = simulate_livemind(
        LiveMindController(cfg, client), "First fact here. Second fact here. Question?", " (A) x"
    )
    assert run.steps and all(s.kind in ("inference", "wait", "cut", "skipped") for s in run.steps)
    assert 0 < run.final_tokens <= 3 and run.latency_s > 0
