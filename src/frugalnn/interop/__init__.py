"""Adapters that let other tools run frugalnn's models (lm-evaluation-harness, ...)."""
