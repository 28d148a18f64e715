"""LiveMind: answer while the prompt is still being typed (arXiv 2406.14319).

Face of the method: ``LiveMindConfig`` (what a run does), the verb ``live(model, config, tokenizer=...)
-> (controller, record)`` (also ``frugalnn.apply``), ``LiveMindController`` (``step`` while the text
grows, ``finish`` at the end), ``simulate_livemind`` / ``simulate_baseline`` (the typing clock),
backends behind one seam (``ScriptedBackend``, ``HTTPBackend``, ``local.LocalBackend``).
"""

from typing import Any

from frugalnn.errors import ConfigError
from frugalnn.methods import register_method
from frugalnn.methods.livemind.actions import Action, ActionCache, parse_action
from frugalnn.methods.livemind.backends import BackendError, HTTPBackend, Piece, ScriptedBackend, chat
from frugalnn.methods.livemind.config import Config, LiveMindConfig
from frugalnn.methods.livemind.controller import (
    LiveMindController,
    Run,
    complete_prompt,
    simulate_baseline,
    simulate_livemind,
)

__all__ = [
    "LiveMindConfig",
    "live",
    "Action",
    "ActionCache",
    "BackendError",
    "Config",
    "HTTPBackend",
    "LiveMindController",
    "Piece",
    "Run",
    "ScriptedBackend",
    "chat",
    "complete_prompt",
    "parse_action",
    "simulate_baseline",
    "simulate_livemind",
]


def live(
    model: Any, config: LiveMindConfig | None = None, *, tokenizer: Any = None, output: Any = None
) -> tuple[LiveMindController, dict[str, Any]]:
    """The verb: a LiveMind controller over ``model`` -> (controller, record).

    ``model`` is a Hugging Face causal LM (with its ``tokenizer``) or any ``Backend`` (``stream`` and
    ``choose``: ``ScriptedBackend``, ``HTTPBackend``, ``LocalBackend``); ``output`` an optional
    second model or backend that writes the final answer (collaborative mode, LiveMind §3.4).
    """
    config = (config or LiveMindConfig()).validate()

    def backend(m: Any, name: str) -> Any:
        if hasattr(m, "stream") and hasattr(m, "choose"):
            return m
        if tokenizer is None:
            raise ConfigError("tokenizer is required when model is a Hugging Face model, not a backend")
        from frugalnn.methods.livemind.local import LocalBackend

        return LocalBackend(m, tokenizer, name=name)

    infer = backend(model, "infer")
    out = backend(output, "output") if output is not None else None
    controller = LiveMindController(config, infer, out)
    return controller, {"method": "livemind", "config": config.to_dict(), "collaborative": out is not None}


register_method(LiveMindConfig, live)
