"""Local transformers backend with a token-prefix KV cache (loaded through ``core/llm.py``).

The backend keeps the KV cache of the last sequence it ran. A new call renders its messages with the
chat template, finds the longest common prefix of token ids with what the cache holds, crops the cache
there and prefills only the rest. With the ``ua-spi`` format earlier messages never change, so an
inference step prefills only its new segment, and the final answer only the last segment and the
options (LiveMind §3: the KV cache of everything already seen is kept).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from frugalnn.errors import ConfigError
from frugalnn.methods.livemind.backends import BackendError, Messages, Piece


@dataclass
class Sampling:
    """Sampling settings of one request: temperature 0 is greedy; ``top_p`` keeps the smallest set of
    most likely tokens whose probabilities sum to at least top_p (nucleus sampling); ``generator``
    seeds the draws (a request's ``seed``)."""

    temperature: float = 0.0
    top_p: float = 1.0
    generator: torch.Generator | None = None


def pick_token(logits: torch.Tensor, sampling: Sampling | None) -> int:
    """The next token: argmax, or a draw from softmax(logits / T) restricted to the top-p nucleus."""
    if sampling is None or sampling.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.double() / sampling.temperature, -1)
    if sampling.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_p, 0) - sorted_p  # mass of the tokens ranked above each one
        sorted_p[before >= sampling.top_p] = 0.0  # the first token always stays
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
    return int(torch.multinomial(probs / probs.sum(), 1, generator=sampling.generator))


class LocalBackend:
    """Chat generation (greedy, or sampled per request) on a local causal LM, reusing the KV cache.

    Several instances may share one model (each keeps its own cache), e.g. LiveMind and the baseline.
    One call runs at a time per instance (a re-entrant lock, so a server can share it between threads).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        name: str = "local",
        reuse_cache: bool = True,
        cpu_clock: bool = False,
    ) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("this tokenizer has no chat template; give a chat (instruct) model")
        self.model = model.eval()
        self.tok = tokenizer
        self.name = name
        self.reuse_cache = reuse_cache
        # cpu_clock: report the calling thread's CPU time instead of wall time. With one torch thread all
        # model work runs on the calling thread, so this is the time an otherwise idle core would take,
        # robust to other processes on a shared machine (wall time is still reported as Piece.wall_s).
        self.clock = time.thread_time if cpu_clock else time.perf_counter
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 2048))
        self.eos_ids = {
            i
            for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"))
            if i is not None
        }
        self.eos_ids |= {
            i for i in [tokenizer.convert_tokens_to_ids("<|endoftext|>")] if isinstance(i, int) and i >= 0
        }
        self.lock = threading.RLock()
        self.last_stats: dict[str, int] = {}
        self._reset()

    @classmethod
    def load(
        cls,
        path_or_name: str,
        name: str | None = None,
        dtype: torch.dtype = torch.float32,
        cpu_clock: bool = False,
    ) -> LocalBackend:
        from frugalnn.core.llm import load_causal_lm

        model, tok = load_causal_lm(path_or_name, dtype=dtype)
        return cls(model, tok, name=name or str(path_or_name), cpu_clock=cpu_clock)

    def _reset(self) -> None:
        from transformers import DynamicCache

        self.cache = DynamicCache()
        self.ids: list[int] = []  # exactly the tokens whose keys/values are in self.cache

    # ------------------------------------------------------------------ token-level core
    def render(self, messages: Messages, prefix: str = "", add_generation_prompt: bool = True) -> list[int]:
        try:
            text = self.tok.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except Exception as err:  # jinja errors for malformed messages
            raise ConfigError(
                f"cannot apply the chat template to these messages ({err}); check roles/contents"
            ) from None
        ids = self.tok(text + prefix, add_special_tokens=False)["input_ids"]
        if len(ids) + 1 >= self.max_positions:
            raise BackendError(
                f"prompt of {len(ids)} tokens exceeds the model's {self.max_positions}; shorten it"
            )
        return ids

    def _crop(self, length: int) -> None:
        """Keep the first ``length`` cached tokens (transformers 5 crops by a negative count)."""
        if length < len(self.ids):
            self.cache.crop(length - len(self.ids))
            del self.ids[length:]

    @torch.no_grad()
    def _forward(self, new_ids: list[int], keep: int = 1) -> torch.Tensor:
        out = self.model(
            input_ids=torch.tensor([new_ids], dtype=torch.long),
            cache=self.cache,
            use_cache=True,
            logits_to_keep=keep,
        )
        self.ids.extend(new_ids)
        return out.logits[0].float()

    def _sync(self, ids: list[int]) -> torch.Tensor:
        """Make the cache hold exactly ``ids``; prefill only past the common prefix. Last-position logits."""
        common = 0
        if self.reuse_cache:
            limit = min(len(ids), len(self.ids))
            while common < limit and ids[common] == self.ids[common]:
                common += 1
        common = min(common, len(ids) - 1)  # re-feed at least one token: its logits are needed
        if common == 0:
            self._reset()
        elif common < len(self.ids):
            self._crop(common)
        self.last_stats = {
            "prompt_tokens": len(ids),
            "reused_tokens": common,
            "prefilled_tokens": len(ids) - common,
        }
        return self._forward(ids[common:])[-1]

    # ------------------------------------------------------------------ the seam
    def prefill(self, messages: Messages) -> float:
        """Warm the cache with ``messages`` (no generation prompt); returns seconds."""
        with self.lock:
            start = self.clock()
            self._sync(self.render(messages, add_generation_prompt=False))
            return self.clock() - start

    def choose(
        self, messages: Messages, prefix: str, words: Sequence[str], bias: Sequence[float], sep: str = " "
    ) -> tuple[str, float]:
        """Compare the model's log-probabilities of each word after ``prefix`` + ``sep`` (teacher-forced, summed).

        ``sep`` " ": words follow with a space (``action inference``); "": they continue the prefix
        directly (``The answer is (B``). Trailing white space of ``prefix`` belongs to ``sep``.
        """
        with self.lock:
            start = self.clock()
            text = prefix.rstrip()
            prompt = self.render(messages, text)
            logits = self._sync(prompt)
            head = self.tok(text, add_special_tokens=False)["input_ids"]
            scores = []
            for word, extra in zip(words, list(bias) + [0.0] * len(words)):
                cand = self.tok(text + sep + word, add_special_tokens=False)["input_ids"]
                if cand[: len(head)] != head:  # the word merged with the prefix's last token
                    raise BackendError(
                        f"cannot score {word!r} after {prefix!r}: the tokenizer merges them; use sep=' '"
                    )
                cand = cand[len(head) :]
                logp = torch.log_softmax(logits, -1)[cand[0]].item()
                if len(cand) > 1:  # multi-token word: teacher-force the rest, then return to the prompt
                    step = torch.log_softmax(self._forward(cand[:-1], keep=len(cand) - 1), -1)
                    logp += sum(step[i, t].item() for i, t in enumerate(cand[1:]))
                    self._crop(len(prompt))
                scores.append(logp + extra)
            best = max(range(len(words)), key=lambda i: scores[i])
            self.last_scores = dict(zip(words, scores))
            return words[best], self.clock() - start

    def stream(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        prefix: str = "",
        avoid_start: str = "",
        sampling: Sampling | None = None,
    ) -> Iterator[Piece]:
        """Decode a chat reply; each piece carries the time since the previous one (the first: the
        prefill). Greedy unless ``sampling`` has a temperature above 0.

        ``avoid_start``: the first token may not be the first token of this word (with or without a space).
        """
        with self.lock:
            start = (self.clock(), time.perf_counter())
            logits = self._sync(self.render(messages, prefix))
            if avoid_start:
                logits = logits.clone()
                for variant in (avoid_start, " " + avoid_start):
                    logits[self.tok(variant, add_special_tokens=False)["input_ids"][0]] = float("-inf")
            yield from self._decode(logits, max_new_tokens, sampling, start)

    def stream_text(
        self, prompt: str, *, max_new_tokens: int, sampling: Sampling | None = None
    ) -> Iterator[Piece]:
        """Continue a plain text ``prompt`` (no chat template): the completions endpoint."""
        with self.lock:
            start = (self.clock(), time.perf_counter())
            ids = self.tok(prompt)["input_ids"]
            if not ids:
                raise BackendError("the prompt is empty after tokenisation; send some text")
            if len(ids) + 1 >= self.max_positions:
                raise BackendError(
                    f"prompt of {len(ids)} tokens exceeds the model's {self.max_positions}; shorten it"
                )
            yield from self._decode(self._sync(ids), max_new_tokens, sampling, start)

    def _decode(
        self, logits: torch.Tensor, max_new_tokens: int, sampling: Sampling | None, start: tuple[float, float]
    ) -> Iterator[Piece]:
        last, last_wall = start
        generated: list[int] = []
        shown = ""
        for _ in range(max_new_tokens):
            token = pick_token(logits, sampling)
            if token in self.eos_ids:  # not fed back: the next prompt re-renders the end marker anyway
                break
            generated.append(token)
            text = self.tok.decode(generated, skip_special_tokens=True)
            if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                logits = self._forward([token])[-1]
                continue
            now, now_wall = self.clock(), time.perf_counter()
            yield Piece(text[len(shown) :], now - last, now_wall - last_wall)
            last, last_wall, shown = now, now_wall, text
            if len(self.ids) + 2 >= self.max_positions:
                break
            logits = self._forward([token])[-1]
        yield Piece("", self.clock() - last, time.perf_counter() - last_wall)

    def chat(self, messages: Messages, max_new_tokens: int = 256) -> str:
        return "".join(p.text for p in self.stream(messages, max_new_tokens=max_new_tokens))
