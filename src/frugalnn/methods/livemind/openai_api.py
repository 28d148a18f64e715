"""The OpenAI request contract the server keeps: parsing and checking of chat-completions and
completions bodies into one ``Request``. What the server cannot do is a 400 naming the field, never
a silently ignored option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "developer", "user", "assistant")
MAX_STOP = 4  # as the OpenAI API
MAX_N = 8


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def error_body(
    message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class Request:
    """One checked request. ``messages`` for chat, ``prompt`` for completions."""

    kind: str  # "chat" or "completion"
    max_tokens: int
    stream: bool = False
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt: str = ""
    prefix: str = ""
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    n: int = 1
    stop: list[str] = field(default_factory=list)
    include_usage: bool = False


def _unsupported(body: dict[str, Any], kind: str) -> None:
    """Fields whose effect this server cannot give: 400 rather than a silently different answer."""
    checks = {
        "logprobs": lambda v: bool(v) if kind == "chat" else v is not None,
        "top_logprobs": lambda v: v is not None,
        "tools": lambda v: bool(v),
        "tool_choice": lambda v: v not in (None, "none"),
        "functions": lambda v: bool(v),
        "function_call": lambda v: v not in (None, "none"),
        "response_format": lambda v: not (v is None or (isinstance(v, dict) and v.get("type") == "text")),
        "logit_bias": lambda v: bool(v),
        "presence_penalty": lambda v: v not in (None, 0, 0.0),
        "frequency_penalty": lambda v: v not in (None, 0, 0.0),
        "audio": lambda v: v is not None,
        "prediction": lambda v: v is not None,
        "echo": lambda v: bool(v),
        "best_of": lambda v: v not in (None, 1),
        "suffix": lambda v: bool(v),
    }
    for name, bad in checks.items():
        if name in body and bad(body[name]):
            raise RequestError(400, f"'{name}' is not supported by this server; leave it out", name)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError(400, f"'{name}' must be a number from {low} to {high}, got {value!r}", name)
    if not low <= value <= high:
        raise RequestError(400, f"'{name}' must be from {low} to {high}, got {value}", name)
    return float(value)


def _whole(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(400, f"'{name}' must be a whole number from {low} to {high}, got {value!r}", name)
    return value


def _content(i: int, content: Any) -> str:
    """A message's content: a string, or a list of text parts (joined); other parts are refused."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RequestError(
                    400, f"messages[{i}].content: only text parts are supported, got {kind!r}", "messages"
                )
            texts.append(part["text"])
        return "".join(texts)
    raise RequestError(400, f"messages[{i}].content must be a string or a list of text parts", "messages")


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            400, "field 'messages' is missing or empty: give a non-empty list of {role, content}", "messages"
        )
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RequestError(400, f"messages[{i}] must be an object with role in {ROLES}", "messages")
        role = "system" if m["role"] == "developer" else m["role"]  # developer: the newer name of system
        clean.append({"role": role, "content": _content(i, m.get("content"))})
    return clean


def _stop(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(stops, list)
        or not all(isinstance(s, str) and s for s in stops)
        or len(stops) > MAX_STOP
    ):
        raise RequestError(
            400, f"'stop' must be a non-empty string or a list of up to {MAX_STOP} of them", "stop"
        )
    return stops


def parse(body: Any, kind: str, model_name: str, max_tokens_limit: int) -> Request:
    """Check a chat-completions (``kind="chat"``) or completions body (raises RequestError)."""
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
    _unsupported(body, kind)
    default_max = 256 if kind == "chat" else 16  # the OpenAI completions default is 16
    max_tokens = _whole(body, "max_completion_tokens", None, 1, max_tokens_limit)
    max_tokens = _whole(body, "max_tokens", max_tokens or default_max, 1, max_tokens_limit)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "'stream' must be true or false", "stream")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not stream):
        raise RequestError(400, "'stream_options' is an object and needs stream: true", "stream_options")
    request = Request(
        kind=kind,
        max_tokens=max_tokens,
        stream=stream,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        seed=_whole(body, "seed", None, -(2**63), 2**63 - 1),
        n=_whole(body, "n", 1, 1, MAX_N),
        stop=_stop(body),
        include_usage=bool((options or {}).get("include_usage", False)),
    )
    if request.top_p == 0.0:
        raise RequestError(400, "'top_p' must be above 0", "top_p")
    if kind == "completion":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt:
            raise RequestError(400, "'prompt' must be a non-empty string (one prompt per request)", "prompt")
        request.prompt = prompt
        return request
    request.messages = _messages(body)
    if body.get("continue_final_message"):  # vLLM's extension: continue a final assistant message
        if request.messages[-1]["role"] != "assistant":
            raise RequestError(400, "continue_final_message needs a final assistant message", "messages")
        request.prefix = request.messages.pop()["content"]
    if not any(m["role"] == "user" for m in request.messages):
        raise RequestError(400, "messages need at least one user message", "messages")
    return request
