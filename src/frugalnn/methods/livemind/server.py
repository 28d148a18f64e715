"""An OpenAI-compatible chat-completions server over a local backend (stdlib ``http.server``).

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` (``stream: true`` gives server-sent
events of ``chat.completion.chunk`` objects ending with ``data: [DONE]``). Decoding is greedy (the
``temperature`` field is accepted and ignored). Extension, as in vLLM: ``continue_final_message: true``
continues a final assistant message instead of starting a new one. Bad input gets a 4xx answer with an
OpenAI-style ``{"error": {...}}`` body and the server keeps serving; a client that hangs up mid-stream
only ends its own generation.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from frugalnn.errors import ConfigError
from frugalnn.methods.livemind.backends import BackendError

MAX_BODY_BYTES = 4 << 20
ROLES = ("system", "user", "assistant")


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def error_body(
    message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def validate(body: Any, model_name: str, max_tokens_limit: int) -> dict[str, Any]:
    """Check a chat-completions request; returns messages, prefix, max_tokens, stream (raises RequestError)."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "missing field 'model'; use the id from GET /v1/models", "model")
    if model != model_name:
        raise RequestError(
            404,
            f"model {model!r} does not exist; this server serves {model_name!r}",
            "model",
            "model_not_found",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            400, "field 'messages' is missing or empty: give a non-empty list of {role, content}", "messages"
        )
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise RequestError(
                400, f"messages[{i}] must be an object with role in {ROLES} and a string content", "messages"
            )
        clean.append({"role": m["role"], "content": m["content"]})
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 256))
    if (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not 1 <= max_tokens <= max_tokens_limit
    ):
        raise RequestError(
            400,
            f"max_tokens must be a whole number from 1 to {max_tokens_limit}, got {max_tokens!r}",
            "max_tokens",
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "'stream' must be true or false", "stream")
    prefix = ""
    if body.get("continue_final_message"):
        if clean[-1]["role"] != "assistant":
            raise RequestError(400, "continue_final_message needs a final assistant message", "messages")
        prefix = clean.pop()["content"]
    if not any(m["role"] == "user" for m in clean):
        raise RequestError(400, "messages need at least one user message", "messages")
    return {"messages": clean, "prefix": prefix, "max_tokens": max_tokens, "stream": stream}


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.0"  # the connection closes after each answer: SSE needs no length

    def log_message(self, format: str, *args: Any) -> None:  # quiet unless asked
        if self.server.verbose:
            super().log_message(format, *args)

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            created = int(self.server.created)
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": self.server.model_name,
                            "object": "model",
                            "created": created,
                            "owned_by": "frugalnn",
                        }
                    ],
                },
            )
        else:
            self._json(
                404, error_body(f"no route GET {self.path}; use /v1/models or POST /v1/chat/completions")
            )

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._json(404, error_body(f"no route POST {self.path}; use /v1/chat/completions"))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise RequestError(413, f"request body of {length} bytes is over {MAX_BODY_BYTES}; send less")
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise RequestError(
                    400, f"the body is not valid JSON ({err.msg if hasattr(err, 'msg') else err})"
                ) from None
            request = validate(body, self.server.model_name, self.server.max_tokens_limit)
            (self._stream if request["stream"] else self._complete)(request)
        except RequestError as err:
            self._json(err.status, error_body(str(err), param=err.param, code=err.code))
        except (ConfigError, BackendError) as err:
            self._json(400, error_body(str(err)))

    def _pieces(self, request: dict[str, Any]):
        return self.server.backend.stream(
            request["messages"], max_new_tokens=request["max_tokens"], prefix=request["prefix"]
        )

    def _envelope(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "object": kind,
            "created": int(time.time()),
            "model": self.server.model_name,
        }

    def _complete(self, request: dict[str, Any]) -> None:
        self.request_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        pieces = list(self._pieces(request))
        text = "".join(p.text for p in pieces)
        n_out = sum(1 for p in pieces if p.text)
        stats = getattr(self.server.backend, "last_stats", {}) or {}
        finish = "length" if n_out >= request["max_tokens"] else "stop"
        self._json(
            200,
            {
                **self._envelope("chat.completion"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                ],
                "usage": {
                    "prompt_tokens": stats.get("prompt_tokens", 0),
                    "completion_tokens": n_out,
                    "total_tokens": stats.get("prompt_tokens", 0) + n_out,
                },
            },
        )

    def _event(self, delta: dict, finish: str | None = None) -> None:
        chunk = {
            **self._envelope("chat.completion.chunk"),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()

    def _stream(self, request: dict[str, Any]) -> None:
        self.request_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        pieces = self._pieces(request)
        first = next(pieces, None)  # errors before any byte is sent still get a proper 4xx
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        n_out = 0
        try:
            self._event({"role": "assistant", "content": ""})
            for piece in _chain(first, pieces):
                if piece.text:
                    n_out += 1
                    self._event({"content": piece.text})
            self._event({}, "length" if n_out >= request["max_tokens"] else "stop")
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # the client hung up: stop generating, keep serving others
        except BackendError as err:
            try:
                self.wfile.write(f"data: {json.dumps(error_body(str(err), 'server_error'))}\n\n".encode())
            except OSError:
                pass
        finally:
            pieces.close()


def _chain(first: Any, rest: Any):
    if first is not None:
        yield first
    yield from rest


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        backend: Any,
        model_name: str,
        host: str = "127.0.0.1",
        port: int = 8000,
        max_tokens_limit: int = 2048,
        verbose: bool = False,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.backend, self.model_name = backend, model_name
        self.max_tokens_limit, self.verbose = max_tokens_limit, verbose
        self.created = time.time()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="frugalnn-serve", daemon=True)
        thread.start()
        return thread
