"""CLI sub-command modules. Each module defines ``register(subparsers)`` and sets ``func`` defaults.

Helpers shared by the modules live in ``frugalnn.commands._common`` (underscore: not a command).
"""
