"""An OpenAI-compatible server over a local backend (stdlib ``http.server``).

Endpoints: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions`` and
``POST /v1/completions`` (``stream: true`` gives server-sent events ending with ``data: [DONE]``;
``stream_options.include_usage`` adds a final usage chunk). Supported: ``max_tokens`` /
``max_completion_tokens``, ``temperature`` and ``top_p`` sampling (a request without ``temperature``
decodes greedily, as the server's ``default_temperature`` 0 says), ``seed`` (reproducible draws),
``n`` choices, ``stop`` strings, content given as a list of text parts, the ``system`` and
``developer`` roles. Anything else that would change the answer (``logprobs``, tools, a JSON
``response_format``, ...) is a 400 naming the field (openai_api.py). Extension, as in vLLM:
``continue_final_message: true`` continues a final assistant message.

Limits that protect the process: a body size cap, per-connection socket timeouts (a slow or silent
client cannot park a thread; a client that stops reading a stream is dropped and its slot freed), at
most ``max_connections`` requests at once (503 beyond), a per-request generation time limit, and the
model's context length (the backend refuses longer prompts with a 400).

Concurrency: with a ``LocalBackend`` requests run one at a time behind its lock; with a
``BatchedBackend`` (batching.py, ``frugalnn serve --max-batch N``) concurrent requests and the ``n``
choices of one request are decoded together, one forward pass per step for all of them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

from frugalnn.errors import ConfigError
from frugalnn.methods.livemind.backends import BackendError
from frugalnn.methods.livemind.openai_api import Request, RequestError, error_body, parse
from frugalnn.methods.livemind.stops import StopScanner

MAX_BODY_BYTES = 4 << 20
ROUTES = {"/v1/chat/completions": "chat", "/chat/completions": "chat", "/v1/completions": "completion",
          "/completions": "completion"}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.0"  # the connection closes after each answer: SSE needs no length

    def setup(self) -> None:
        self.timeout = self.server.socket_timeout_s  # reads and writes of this connection
        # a bounded send buffer: a client that stops reading blocks the writer (then the write
        # timeout frees the slot) within this many bytes, not after megabytes of kernel autotuning
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.server.send_buffer_bytes)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # quiet unless asked
        if self.server.verbose:
            super().log_message(format, *args)

    def handle(self) -> None:
        if not self.server.slots.acquire(blocking=False):
            self._busy()
            return
        try:
            super().handle()
        except (TimeoutError, ConnectionError):
            pass  # a silent or vanished client: drop the connection, free the slot
        finally:
            self.server.slots.release()

    def _busy(self) -> None:
        body = json.dumps(error_body("the server is busy; retry shortly", "server_error")).encode()
        try:
            self.wfile.write(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n")
            self.wfile.write(f"Content-Length: {len(body)}\r\nRetry-After: 1\r\n\r\n".encode() + body)
        except OSError:
            pass

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _model_card(self) -> dict[str, Any]:
        return {"id": self.server.model_name, "object": "model", "created": int(self.server.created),
                "owned_by": "frugalnn"}  # fmt: skip

    def do_GET(self) -> None:
        path = self.path.rstrip("/")
        if path in ("/v1/models", "/models"):
            self._json(200, {"object": "list", "data": [self._model_card()]})
        elif path.startswith(("/v1/models/", "/models/")):
            wanted = path.split("/models/", 1)[1]
            if wanted == self.server.model_name:
                self._json(200, self._model_card())
            else:
                message = f"model {wanted!r} does not exist; this server serves {self.server.model_name!r}"
                self._json(404, error_body(message, param="model", code="model_not_found"))
        else:
            self._json(404, error_body(f"no route GET {self.path}; use /v1/models"))

    def _body(self) -> Any:
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            raise RequestError(411, "send a Content-Length header with the JSON body's size in bytes")
        try:
            length = int(raw_length)
        except ValueError:
            raise RequestError(
                400, f"Content-Length must be a whole number of bytes, got {raw_length[:40]!r}"
            ) from None
        if length < 0:
            raise RequestError(400, f"Content-Length must not be negative, got {length}")
        if length > MAX_BODY_BYTES:
            raise RequestError(413, f"request body of {length} bytes is over {MAX_BODY_BYTES}; send less")
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RequestError(400, f"the body is not valid JSON ({getattr(err, 'msg', err)})") from None
        except RecursionError:
            raise RequestError(400, "the body's JSON is nested too deeply") from None

    def do_POST(self) -> None:
        kind = ROUTES.get(self.path.rstrip("/"))
        if kind is None:
            self._json(
                404, error_body(f"no route POST {self.path}; use /v1/chat/completions or /v1/completions")
            )
            return
        self.open_streams: list[Any] = []
        try:
            body = self._body()
            request = parse(body, kind, self.server.model_name, self.server.max_tokens_limit)
            if body.get("temperature") is None:
                request.temperature = self.server.default_temperature
            (self._stream if request.stream else self._complete)(request)
        except RequestError as err:
            self._json(err.status, error_body(str(err), param=err.param, code=err.code))
        except (ConfigError, BackendError) as err:
            self._json(400, error_body(str(err)))
        finally:
            for pieces in self.open_streams:  # ends (or cancels) every choice, even one never read
                pieces.close()

    # --------------------------------------------------------------------------------- generation
    def _choices(self, request: Request) -> list[tuple[int, Iterator[tuple[str, str | None]]]]:
        """(index, stream of (text, finish_reason or None)) for each of the ``n`` choices.

        All choices are started here, so a batching backend runs them side by side; choice ``i``
        draws from its own generator seeded ``seed + i`` (the same answers whatever the batching).
        """
        from frugalnn.methods.livemind.local import Sampling

        base = request.seed if request.seed is not None else time.time_ns()
        streams = []
        for index in range(request.n):
            generator = torch.Generator()
            generator.manual_seed((base + index) % 2**64)
            pieces = self._pieces(request, Sampling(request.temperature, request.top_p, generator))
            self.open_streams.append(pieces)
            streams.append((index, self._one(request, pieces)))
        return streams

    def _pieces(self, request: Request, sampling: Any) -> Iterator[Any]:
        backend = self.server.backend
        if request.kind == "completion":
            if not hasattr(backend, "stream_text"):
                raise RequestError(
                    400, "this backend has no plain-text completions; use /v1/chat/completions"
                )
            return backend.stream_text(request.prompt, max_new_tokens=request.max_tokens, sampling=sampling)
        return backend.stream(
            request.messages, max_new_tokens=request.max_tokens, prefix=request.prefix, sampling=sampling
        )

    def _one(self, request: Request, pieces: Any) -> Iterator[tuple[str, str | None]]:
        scanner, n_out, deadline = StopScanner(request.stop), 0, self.deadline
        finish, first = "stop", True
        try:
            for piece in pieces:
                if first:  # the backend's stats of this prompt (read while it is still this request's)
                    stats = getattr(self.server.backend, "last_stats", {}) or {}
                    self.prompt_tokens, first = stats.get("prompt_tokens", 0), False
                if not piece.text:
                    continue
                n_out += 1
                text = scanner.feed(piece.text)
                if text:
                    yield text, None
                if scanner.stopped:
                    break
                if time.monotonic() > deadline:
                    finish = "length"  # the server's generation time limit
                    break
            else:
                finish = "length" if n_out >= request.max_tokens else "stop"
            tail = scanner.flush()
            if tail:
                yield tail, None
        finally:
            pieces.close()
            self.tokens_out += n_out
        yield "", finish

    def _envelope(self, request: Request, chunk: bool) -> dict[str, Any]:
        kind = "chat.completion" if request.kind == "chat" else "text_completion"
        return {"id": self.request_id, "object": kind + (".chunk" if chunk and request.kind == "chat" else ""),
                "created": int(time.time()), "model": self.server.model_name}  # fmt: skip

    def _usage(self) -> dict[str, int]:
        prompt = self.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.tokens_out,
            "total_tokens": prompt + self.tokens_out,
        }

    def _start(self, request: Request) -> None:
        prefix = "chatcmpl" if request.kind == "chat" else "cmpl"
        self.request_id, self.tokens_out, self.prompt_tokens = f"{prefix}-{uuid.uuid4().hex[:24]}", 0, 0
        self.deadline = time.monotonic() + self.server.generation_timeout_s  # for all n choices together

    def _complete(self, request: Request) -> None:
        self._start(request)
        choices = []
        for index, stream in self._choices(request):
            parts, finish = [], "stop"
            for text, reason in stream:
                parts.append(text)
                finish = reason or finish
            text = "".join(parts)
            if request.kind == "chat":
                choices.append(
                    {
                        "index": index,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                )
            else:
                choices.append({"index": index, "text": text, "finish_reason": finish, "logprobs": None})
        self._json(200, {**self._envelope(request, False), "choices": choices, "usage": self._usage()})

    def _event(
        self, request: Request, index: int, text: str | None, finish: str | None, role: bool = False
    ) -> None:
        if request.kind == "chat":
            delta = {"role": "assistant", "content": ""} if role else ({"content": text} if text else {})
            choice = {"index": index, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}
        self._send({**self._envelope(request, True), "choices": [choice]})

    def _send(self, obj: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
        self.wfile.flush()

    def _stream(self, request: Request) -> None:
        self._start(request)
        choices = self._choices(request)
        index, first = choices[0]
        head = next(first)  # errors before any byte is sent still get a proper 4xx
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        try:
            for i, stream in _chain((index, _chain(head, first)), choices[1:]):
                if request.kind == "chat":
                    self._event(request, i, None, None, role=True)
                for text, finish in stream:
                    self._event(request, i, text, finish)
            if request.include_usage:
                self._send({**self._envelope(request, True), "choices": [], "usage": self._usage()})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            pass  # the client hung up or stopped reading: stop generating, keep serving others
        except BackendError as err:
            try:
                self._send(error_body(str(err), "server_error"))
            except OSError:
                pass


def _chain(first: Any, rest: Any):
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
        *,
        max_connections: int = 16,
        socket_timeout_s: float = 30.0,
        generation_timeout_s: float = 300.0,
        default_temperature: float = 0.0,
        send_buffer_bytes: int = 1 << 17,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.backend, self.model_name = backend, model_name
        self.max_tokens_limit, self.verbose = max_tokens_limit, verbose
        self.slots = threading.BoundedSemaphore(max_connections)
        self.socket_timeout_s, self.generation_timeout_s = socket_timeout_s, generation_timeout_s
        self.default_temperature, self.send_buffer_bytes = default_temperature, send_buffer_bytes
        self.created = time.time()

    def server_close(self) -> None:
        super().server_close()
        close = getattr(self.backend, "close", None)  # a batching backend stops its scheduler thread
        if close is not None:
            close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="frugalnn-serve", daemon=True)
        thread.start()
        return thread
