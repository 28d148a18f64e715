"""MethodConfig: declared checks, cross-field checks, versioned round-trip, presets, CLI flags."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import pytest

from frugalnn.commands._common import add_config_options, config_from_args
from frugalnn.core.config import FieldError, MethodConfig, option
from frugalnn.errors import ConfigError


@dataclass
class ToyConfig(MethodConfig):
    METHOD = "toy"
    VERSION = 2
    PRESETS = {"paper": {"ratio": 0.5}, "ours": {"ratio": 0.3, "mode": "b"}}

    ratio: float = option(0.2, "share removed", low=0.0, high=1.0, low_open=True, high_open=True)
    mode: str = option("a", "which mode", choices=("a", "b"))
    layers: tuple[str, ...] = option(("x",), "layer names")
    steps: int | None = option(None, "optional steps", low=1)
    fast: bool = option(False, "go fast")

    def check(self) -> None:
        if self.mode == "b" and self.steps is not None and self.steps > 10:
            raise FieldError("steps", "must be 10 or fewer in mode b")

    @classmethod
    def migrate(cls, data, version):
        if version < 2 and "keep" in data:
            data = dict(data)
            data["ratio"] = 1.0 - data.pop("keep")
        return data


def test_validate_returns_self_and_checks_ranges():
    cfg = ToyConfig()
    assert cfg.validate() is cfg
    for bad in (0.0, 1.0, float("nan"), float("inf"), -0.1):
        with pytest.raises(FieldError, match="ratio"):
            ToyConfig(ratio=bad).validate()
    with pytest.raises(FieldError, match="mode must be one of a, b"):
        ToyConfig(mode="c").validate()
    with pytest.raises(FieldError, match="steps"):
        ToyConfig(steps=0).validate()
    with pytest.raises(FieldError, match="10 or fewer"):
        ToyConfig(mode="b", steps=11).validate()


def test_round_trip_through_json_and_migration():
    cfg = ToyConfig(ratio=0.4, layers=("a", "b"), steps=3)
    back = ToyConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and isinstance(back.layers, tuple)
    assert cfg.to_dict()["config_of"] == "toy" and cfg.to_dict()["config_version"] == 2
    old = {"config_of": "toy", "keep": 0.75}  # no config_version: version 1
    assert ToyConfig.from_dict(old).ratio == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="newer"):
        ToyConfig.from_dict({"config_of": "toy", "config_version": 3})
    with pytest.raises(ConfigError, match="no field"):
        ToyConfig.from_dict({"config_of": "toy", "config_version": 2, "bogus": 1})
    with pytest.raises(ConfigError, match="for method"):
        ToyConfig.from_dict({"config_of": "other"})


def test_presets():
    assert ToyConfig.preset("ours") == ToyConfig(ratio=0.3, mode="b")
    assert ToyConfig.preset("paper", fast=True).fast is True
    with pytest.raises(ConfigError, match="no preset"):
        ToyConfig.preset("nope")


def test_cli_flags_come_from_fields_and_errors_name_flags():
    parser = argparse.ArgumentParser()
    add_config_options(parser, ToyConfig)
    args = parser.parse_args(["--ratio", "0.6", "--layers", "p,q", "--fast"])
    cfg = config_from_args(ToyConfig, args)
    assert cfg == ToyConfig(ratio=0.6, layers=("p", "q"), fast=True)
    assert config_from_args(ToyConfig, parser.parse_args([]), preset="ours").mode == "b"
    with pytest.raises(ConfigError, match=r"^--ratio must be in \(0.0, 1.0\)"):
        config_from_args(ToyConfig, parser.parse_args(["--ratio", "2"]))
    help_text = parser.format_help()
    assert "share removed" in help_text and "--no-fast" in help_text
