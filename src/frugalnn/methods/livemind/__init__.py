"""LiveMind: answer while the prompt is still being typed (arXiv 2406.14319).

Face of the method: ``Config`` (what a run does), ``LiveMindController`` (the verb: ``step`` while the
text grows, ``finish`` at the end), ``simulate_livemind`` / ``simulate_baseline`` (the typing clock),
backends behind one seam (``ScriptedBackend``, ``HTTPBackend``, ``local.LocalBackend``).
"""

from frugalnn.methods.livemind.actions import Action, ActionCache, parse_action
from frugalnn.methods.livemind.backends import BackendError, HTTPBackend, Piece, ScriptedBackend, chat
from frugalnn.methods.livemind.config import Config
from frugalnn.methods.livemind.controller import (
    LiveMindController,
    Run,
    complete_prompt,
    simulate_baseline,
    simulate_livemind,
)

__all__ = [
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
