"""Dynamic batching for the server: concurrent requests share one forward pass per decoding step.

A scheduler thread owns the model. Requests arrive as ``Job``s; when the model is idle it waits a
small window (``window_s``) for more to arrive, then admits up to ``max_batch``. Each new job is
prefilled on its own (batch 1: no padding inside a prompt, as an unbatched run), starting from the
keys/values of the previous prompt for the tokens they share (the chat template's system prompt, a
common instruction), and its KV cache joins the running batch, left-padded with zero keys/values
that the attention mask hides.
Every decoding step then runs all active rows at once (``input_ids`` [B, 1], a [B, T] attention mask,
per-row ``position_ids``). Rows leave at a step boundary when they finish or their client goes away
(cancelled), and waiting jobs join at the next boundary (a step-level continuous batch).

Each job keeps its own sampling (greedy at temperature 0, or draws from its own seeded generator),
its own token cap and the model's context limit. Text decoding, stop strings and time limits stay
with the consumer (the request's thread), so a slow or vanished client never stalls the batch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from frugalnn.methods.livemind.backends import BackendError, Messages, Piece
from frugalnn.methods.livemind.local import LocalBackend, Sampling, pick_token

_END = object()  # queue marker: the job produced its last token


@dataclass
class Job:
    """One sequence to generate: the prompt ids in, generated token ids out through ``out``."""

    ids: list[int]
    max_new_tokens: int
    sampling: Sampling | None
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    produced: int = 0
    length: int = 0  # real (unpadded) tokens in the cache for this row


class _Batch:
    """The running rows: their jobs, one shared KV cache, the [B, T] mask and each row's last token."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None
        self.last: list[int] = []

    def add(self, job: Job, cache: Any, token: int) -> None:
        new_mask = torch.ones(1, job.length, dtype=torch.long)
        if not self.jobs:
            self.jobs, self.cache, self.mask, self.last = [job], cache, new_mask, [token]
            return
        width = max(self.mask.shape[1], job.length)
        for mine, theirs in zip(self.cache.layers, cache.layers):
            for name in ("keys", "values"):
                a, b = getattr(mine, name), getattr(theirs, name)
                setattr(mine, name, torch.cat([_pad_left(a, width), _pad_left(b, width)], 0))
        self.mask = torch.cat([_pad_left(self.mask, width, dim=1), _pad_left(new_mask, width, dim=1)], 0)
        self.jobs.append(job)
        self.last.append(token)

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows``; drop leading columns that no remaining row attends to."""
        if not rows:
            self.__init__()
            return
        index = torch.tensor(rows, dtype=torch.long)
        mask = self.mask[index]
        start = int(mask.any(0).long().argmax())  # first column some row uses
        self.mask = mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]
        self.jobs = [self.jobs[i] for i in rows]
        self.last = [self.last[i] for i in rows]


def _pad_left(t: torch.Tensor, width: int, dim: int = 2) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim)


def _mergeable(cache: Any) -> bool:
    """Only plain full-attention layers can be padded and stacked (not sliding windows, not states)."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None]))


class BatchScheduler:
    """The thread that runs all jobs on one model; ``submit`` is safe from any thread."""

    def __init__(
        self,
        model: torch.nn.Module,
        eos_ids: set[int],
        max_positions: int,
        max_batch: int,
        window_s: float,
        reuse_prefix: bool = True,
    ) -> None:
        if max_batch < 1 or window_s < 0:
            raise ValueError("max_batch must be >= 1 and window_s >= 0")
        self.model, self.eos_ids, self.max_positions = model, eos_ids, max_positions
        self.max_batch, self.window_s, self.reuse_prefix = max_batch, window_s, reuse_prefix
        self.pending: list[Job] = []
        self.cond = threading.Condition()
        self.closed = False
        self.batch = _Batch()
        self.stackable: bool | None = None  # learnt from the first prefilled cache
        self.steps = 0  # batched decoding steps run (for tests and the benchmark)
        self.rows_stepped = 0  # sum of the batch sizes of those steps
        self.cancelled = 0  # jobs dropped because their client went away
        self.reused_tokens = 0  # prompt tokens whose keys/values came from the previous prompt
        self.prefix_ids: list[int] = []
        self.prefix: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.thread = threading.Thread(target=self._run, name="frugalnn-batch", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        with self.cond:
            if self.closed:
                raise BackendError("the server is shutting down")
            self.pending.append(job)
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()
        self.thread.join(timeout=5)

    # ------------------------------------------------------------------ scheduler thread
    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.pending and not self.batch.jobs and not self.closed:
                    self.cond.wait()
                if self.closed:
                    for job in self.pending + self.batch.jobs:
                        job.out.put(BackendError("the server is shutting down"))
                    return
                if not self.batch.jobs:  # idle: give concurrent requests a moment to arrive together
                    deadline = time.monotonic() + self.window_s
                    while len(self.pending) < self.max_batch and not self.closed:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self.cond.wait(left)
                room = self.max_batch - len(self.batch.jobs)
                if self.stackable is False:  # this model's cache cannot be stacked: one job at a time
                    room = 0 if self.batch.jobs else 1
                admitted, self.pending = self.pending[:room], self.pending[room:]
            try:
                for k, job in enumerate(admitted):
                    if self.stackable is False and self.batch.jobs:
                        with self.cond:
                            self.pending[:0] = admitted[k:]  # they wait for an empty batch
                        admitted = admitted[:k]
                        break
                    self._admit(job)
                if self.batch.jobs:
                    self._step()
            except Exception as err:  # a model failure ends the running jobs, not the server
                for job in admitted + self.batch.jobs:
                    job.out.put(BackendError(f"generation failed ({type(err).__name__}: {err})"))
                self.batch = _Batch()

    def _emit(self, job: Job, logits: torch.Tensor) -> int | None:
        """Pick the job's next token and hand it out; None when the job ends here."""
        if job.cancelled:  # its client went away during this forward pass
            self.cancelled += 1
            return None
        token = pick_token(logits, job.sampling)
        if token in self.eos_ids:
            job.out.put(_END)
            return None
        job.produced += 1
        job.out.put(token)
        if job.produced >= job.max_new_tokens or job.length + 2 >= self.max_positions:
            job.out.put(_END)
            return None
        return token

    @torch.no_grad()
    def _admit(self, job: Job) -> None:
        from transformers import DynamicCache

        if job.cancelled:
            self.cancelled += 1
            return
        cache, common = DynamicCache(), 0
        if self.prefix and self.stackable:  # start from the last prompt's keys/values they share
            limit = min(len(job.ids) - 1, len(self.prefix_ids))  # feed at least one token: its logits
            while common < limit and job.ids[common] == self.prefix_ids[common]:
                common += 1
            for i, (keys, values) in enumerate(self.prefix):
                if common:
                    cache.update(keys[:, :, :common], values[:, :, :common], i)
        out = self.model(
            input_ids=torch.tensor([job.ids[common:]]), cache=cache, use_cache=True, logits_to_keep=1
        )
        job.length = len(job.ids)
        self.reused_tokens += common
        if self.stackable is None:
            self.stackable = _mergeable(cache)
        if self.stackable and self.reuse_prefix:  # forward passes replace these tensors, never write them
            self.prefix_ids, self.prefix = job.ids, [(la.keys, la.values) for la in cache.layers]
        token = self._emit(job, out.logits[0, -1].float())
        if token is not None:
            self.batch.add(job, cache, token)

    @torch.no_grad()
    def _step(self) -> None:
        batch = self.batch
        live = [i for i, job in enumerate(batch.jobs) if not job.cancelled]
        if len(live) < len(batch.jobs):
            self.cancelled += len(batch.jobs) - len(live)
            batch.keep(live)
            if not live:
                return
        mask = torch.cat([batch.mask, torch.ones(len(batch.jobs), 1, dtype=torch.long)], 1)
        positions = torch.tensor([[job.length] for job in batch.jobs])
        out = self.model(
            input_ids=torch.tensor([[t] for t in batch.last]),
            attention_mask=mask,
            position_ids=positions,
            cache=batch.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        batch.mask = mask
        self.steps += 1
        self.rows_stepped += len(batch.jobs)
        keep = []
        for i, job in enumerate(batch.jobs):
            job.length += 1
            token = self._emit(job, out.logits[i, -1].float())
            if token is not None:
                batch.last[i] = token
                keep.append(i)
        if len(keep) < len(batch.jobs):
            batch.keep(keep)


class BatchedBackend:
    """The server's backend with dynamic batching: ``stream`` / ``stream_text`` as ``LocalBackend``
    (same prompts, same pieces), but calls from many threads run together on one scheduler."""

    def __init__(self, local: LocalBackend, max_batch: int = 8, window_s: float = 0.01) -> None:
        self.local, self.name = local, local.name
        self.tok_lock = threading.Lock()  # a fast tokenizer is not safe to call from several threads
        self.scheduler = BatchScheduler(
            local.model, local.eos_ids, local.max_positions, max_batch=max_batch, window_s=window_s
        )
        self._stats = threading.local()

    @property
    def last_stats(self) -> dict[str, int]:
        """The calling thread's last request (prompt tokens), not another thread's."""
        return getattr(self._stats, "value", {})

    def close(self) -> None:
        self.scheduler.close()

    def stream(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        prefix: str = "",
        avoid_start: str = "",
        sampling: Sampling | None = None,
    ) -> Iterator[Piece]:
        if avoid_start:
            raise BackendError("avoid_start is not supported by the batched backend")
        with self.tok_lock:
            ids = self.local.render(messages, prefix)
        return self._submit(ids, max_new_tokens, sampling)

    def stream_text(
        self, prompt: str, *, max_new_tokens: int, sampling: Sampling | None = None
    ) -> Iterator[Piece]:
        with self.tok_lock:
            ids = self.local.tok(prompt)["input_ids"]
        if not ids:
            raise BackendError("the prompt is empty after tokenisation; send some text")
        if len(ids) + 1 >= self.local.max_positions:
            raise BackendError(
                f"prompt of {len(ids)} tokens exceeds the model's {self.local.max_positions}; shorten it"
            )
        return self._submit(ids, max_new_tokens, sampling)

    def _submit(self, ids: list[int], max_new_tokens: int, sampling: Sampling | None) -> _JobStream:
        """Queue the job now (so the ``n`` choices of one request run side by side); read it lazily."""
        self._stats.value = {"prompt_tokens": len(ids), "reused_tokens": 0, "prefilled_tokens": len(ids)}
        job = Job(ids, max_new_tokens, sampling)
        self.scheduler.submit(job)
        return _JobStream(job, self)


class _JobStream:
    """Iterator of ``Piece``s over a job's tokens; ``close`` cancels the job (its row leaves the batch)."""

    def __init__(self, job: Job, backend: BatchedBackend) -> None:
        self.job, self.backend = job, backend
        self.generated: list[int] = []
        self.shown, self.done = "", False
        self.last = time.perf_counter()

    def __iter__(self) -> _JobStream:
        return self

    def __next__(self) -> Piece:
        while not self.done:
            item = self.job.out.get()
            if isinstance(item, Exception):
                self.done = True
                raise item
            now = time.perf_counter()
            if item is _END:
                self.done = True
                seconds, self.last = now - self.last, now
                return Piece("", seconds, seconds)
            self.generated.append(item)
            with self.backend.tok_lock:
                text = self.backend.local.tok.decode(self.generated, skip_special_tokens=True)
            if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                continue
            piece = text[len(self.shown) :]
            self.shown, seconds, self.last = text, now - self.last, now
            return Piece(piece, seconds, seconds)
        raise StopIteration

    def close(self) -> None:
        self.job.cancelled = True
        self.done = True
