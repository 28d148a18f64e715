"""The converted copy of a bundled model is found by the asset's file name and size, so a cache that is
moved, mounted elsewhere or shared is used as is (no reconversion); a fresh copy gets the usual
permissions."""

from __future__ import annotations

import json
import os
import stat

from frugalnn.core.assets import ASSET_FILES
from frugalnn.core.io import usual_permissions
from frugalnn.core.llm import _bundled_folder


def test_a_cache_mounted_elsewhere_is_used_as_is(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    gguf = cache / ASSET_FILES["smollm2"]
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"not a GGUF file")  # a reconversion would fail on it: the test sees one
    folder = cache / "models" / "smollm2"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    # the marker a conversion wrote when this cache lived at another path
    stamp = {"source": f"/elsewhere/{ASSET_FILES['smollm2']}", "bytes": gguf.stat().st_size}
    (folder / "frugalnn_source.json").write_text(json.dumps(stamp))
    monkeypatch.setenv("FRUGALNN_CACHE", str(cache))
    assert _bundled_folder("smollm2") == folder  # returned at once: no GGUF conversion
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "frugalnn_source.json"]


def test_usual_permissions_follow_the_umask(tmp_path) -> None:
    folder = tmp_path / "copy"
    folder.mkdir(mode=0o700)
    (folder / "model.safetensors").write_bytes(b"x")
    os.chmod(folder / "model.safetensors", 0o600)
    old = os.umask(0o022)
    try:
        usual_permissions(folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "model.safetensors").stat().st_mode) == 0o644
