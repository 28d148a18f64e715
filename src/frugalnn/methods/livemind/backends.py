"""The model seam: ``chat(messages) -> str`` plus streaming, and the backends that are not torch.

Every backend streams ``Piece``s (text, seconds of model time it cost). The controller adds those
seconds to its clock, so the same controller runs on real wall time (local, HTTP) and on the exact
virtual time of the scripted backend used in tests.

- ``ScriptedBackend``: fixed replies with fixed per-token / prefill delays, deterministic.
- ``HTTPBackend``: any OpenAI-compatible server (vLLM, llama.cpp server, SGLang, ``frugalnn serve``).
The local transformers backend lives in ``local.py``.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from frugalnn.errors import ToolError

Messages = list[dict[str, str]]


@dataclass
class Piece:
    """A chunk of generated text and the model time it took (the first one includes the prefill).

    ``seconds`` is on the backend's clock (wall time, or the thread's CPU time for a local backend
    asked to measure what an idle core would take); ``wall_s`` is always wall time (None: same).
    """

    text: str
    seconds: float
    wall_s: float | None = None


class BackendError(ToolError):
    """A backend call failed or timed out; ``seconds`` is the time it cost before failing."""

    def __init__(self, message: str, seconds: float = 0.0) -> None:
        super().__init__(message)
        self.seconds = seconds


class Backend(Protocol):
    name: str

    def stream(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        prefix: str = "",
        avoid_start: str = "",
        sampling: Any = None,
    ) -> Iterator[Piece]:
        """Stream the assistant reply; ``prefix`` is forced as the start of the reply (not yielded);
        the reply may not start with the word ``avoid_start`` (a hint: remote backends may ignore it);
        ``sampling`` (local.Sampling) draws tokens instead of greedy decoding where the backend can."""
        ...

    def choose(
        self, messages: Messages, prefix: str, words: Sequence[str], bias: Sequence[float], sep: str = " "
    ) -> tuple[str, float]:
        """Pick the word the model scores highest right after ``prefix`` + ``sep``; returns (word, seconds)."""
        ...


def chat(backend: Backend, messages: Messages, max_new_tokens: int = 256) -> str:
    """The plain seam: the whole reply as one string."""
    return "".join(p.text for p in backend.stream(messages, max_new_tokens=max_new_tokens))


class ScriptedBackend:
    """Deterministic backend for tests: replies come from a list (cycled) or a function of the messages.

    A reply is split into word tokens (each with its leading white space); the first piece costs
    ``prefill_s + token_s``, every other one ``token_s``; ``choose`` costs ``choose_s``. Calls whose
    index is in ``fail_calls`` raise ``BackendError`` after ``fail_s`` seconds (a timeout).
    """

    def __init__(
        self,
        replies: Sequence[str] | Callable[[Messages], str],
        *,
        token_s: float = 0.05,
        prefill_s: float = 0.0,
        choose_s: float = 0.0,
        choices: Sequence[str] | Callable[[Messages], str] = ("inference",),
        fail_calls: Sequence[int] = (),
        fail_s: float = 0.0,
        name: str = "scripted",
    ) -> None:
        self.replies = replies
        self.choices = choices
        self.token_s, self.prefill_s, self.choose_s = token_s, prefill_s, choose_s
        self.fail_calls, self.fail_s = set(fail_calls), fail_s
        self.name = name
        self.calls: list[tuple[str, Messages]] = []  # (kind, messages) of every call, for tests
        self._n_stream = self._n_choose = 0

    def _check_fail(self) -> None:
        index = len(self.calls) - 1
        if index in self.fail_calls:
            raise BackendError(f"scripted failure of call {index}", seconds=self.fail_s)

    def stream(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        prefix: str = "",
        avoid_start: str = "",
        sampling: Any = None,  # scripted replies do not sample
    ) -> Iterator[Piece]:
        self.calls.append(("stream", [dict(m) for m in messages]))
        self._check_fail()
        if callable(self.replies):
            reply = self.replies(messages)
        else:
            reply = self.replies[self._n_stream % len(self.replies)]
        self._n_stream += 1
        for i, token in enumerate(re.findall(r"\s*\S+", reply)[:max_new_tokens]):
            yield Piece(token, self.token_s + (self.prefill_s if i == 0 else 0.0))

    def choose(
        self, messages: Messages, prefix: str, words: Sequence[str], bias: Sequence[float], sep: str = " "
    ) -> tuple[str, float]:
        self.calls.append(("choose", [dict(m) for m in messages]))
        self._check_fail()
        if callable(self.choices):
            word = self.choices(messages)
        else:
            word = self.choices[self._n_choose % len(self.choices)]
        self._n_choose += 1
        return (word if word in words else words[0]), self.choose_s


class HTTPBackend:
    """Client of an OpenAI-compatible ``/v1/chat/completions`` endpoint (streaming SSE), stdlib only.

    A forced reply ``prefix`` is sent as a final assistant message with ``continue_final_message``
    (vLLM's and ``frugalnn serve``'s extension). ``choose`` asks for a few tokens after ``action `` and
    takes the first allowed word it finds; without one it picks ``words[0]`` (an unparseable reply
    counts as an inference, spec step 3).
    """

    def __init__(
        self, base_url: str, model: str, *, timeout_s: float = 60.0, api_key: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.timeout_s = timeout_s
        self.api_key = api_key
        self.name = f"http:{model}"

    def _request(self, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=data, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300]
            raise BackendError(f"server answered {err.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise BackendError(
                f"cannot reach {self.base_url} ({err}); start the server (frugalnn serve) or fix the URL",
                seconds=self.timeout_s if isinstance(err, (TimeoutError, socket.timeout)) else 0.0,
            ) from None

    def _body(self, messages: Messages, max_new_tokens: int, prefix: str, stream: bool) -> dict[str, Any]:
        messages = [dict(m) for m in messages]
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_new_tokens, "temperature": 0.0}
        if prefix:
            messages.append({"role": "assistant", "content": prefix})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        body["messages"] = messages
        body["stream"] = stream
        return body

    def complete(self, messages: Messages, max_new_tokens: int = 256, prefix: str = "") -> dict[str, Any]:
        """One non-streaming call; the decoded JSON response."""
        with self._request(self._body(messages, max_new_tokens, prefix, stream=False)) as response:
            return json.loads(response.read())

    def stream(
        self, messages: Messages, *, max_new_tokens: int, prefix: str = "", avoid_start: str = ""
    ) -> Iterator[Piece]:
        start = last = time.perf_counter()
        response = self._request(self._body(messages, max_new_tokens, prefix, stream=True))
        try:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                event = json.loads(payload)
                if "error" in event:
                    raise BackendError(f"server error mid-stream: {event['error'].get('message')}")
                text = event["choices"][0].get("delta", {}).get("content") or ""
                if text:
                    now = time.perf_counter()
                    yield Piece(text, now - last)
                    last = now
        except TimeoutError as err:
            raise BackendError(
                f"stream from {self.base_url} timed out ({err})", time.perf_counter() - start
            ) from None
        finally:
            response.close()

    def choose(
        self, messages: Messages, prefix: str, words: Sequence[str], bias: Sequence[float], sep: str = " "
    ) -> tuple[str, float]:
        start = time.perf_counter()
        reply = self.complete(messages, max_new_tokens=4, prefix=prefix)  # the model writes ``sep`` itself
        text = reply["choices"][0]["message"]["content"] or ""
        # the word that appears first in the reply (an API without scores for given words)
        found = sorted((text.find(w), i) for i, w in enumerate(words) if w in text)
        return (words[found[0][1]] if found else words[0]), time.perf_counter() - start

    def models(self) -> list[str]:
        """Model ids the server lists at ``/v1/models``."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=self.timeout_s) as response:
                return [m["id"] for m in json.loads(response.read())["data"]]
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise BackendError(
                f"cannot reach {self.base_url}/models ({err}); start the server first"
            ) from None
