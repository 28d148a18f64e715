"""MAC characterisations PowerPruning needs, cached to files (PowerPruning Sec. 3.1-3.2).

* per layer: energy per operation of every weight value under that layer's own (activation,
  partial-sum) stream (zero-delay and, for ``energy="glitch"``, glitch-aware);
* once per MAC: the sensitised-delay table D[w, a] (worst delay of a transition into activation a
  with weight w held) from a uniform stream, so every activation value is reached; delays are a
  property of the circuit, and a uniform stream bounds what real streams sensitise.

A cache entry is keyed by the SHA-256 of the streams and the characterisation settings and holds
only numbers (``.npz`` without pickles).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from frugalnn.core.assets import cache_dir as frugal_cache
from frugalnn.core.config import FieldError
from frugalnn.core.io import atomic_write_bytes
from frugalnn.hw.mac import CharacterizeConfig, MacConfig, build_mac, characterize_mac
from frugalnn.hw.synth import MappedNetlist
from frugalnn.methods.power_pruning.layers import BITS

MAC = MacConfig(bits=BITS, psum_bits=22, weight_signed=True, activation_signed=True)
ALL_WEIGHTS = np.arange(-(1 << (BITS - 1)) + 1, 1 << (BITS - 1))  # -127..127: the symmetric int8 grid


@dataclass
class EnergyTable:
    weights: np.ndarray  # weight codes characterised
    zero_delay_pj: np.ndarray  # energy per operation, zero delay (+ clock + leakage)
    glitch_pj: np.ndarray | None  # glitch-aware energy per operation (+ clock + leakage)
    clock_pj: float
    leakage_pj: float

    def energy(self, mode: str) -> np.ndarray:
        return self.glitch_pj if mode == "glitch" and self.glitch_pj is not None else self.zero_delay_pj

    def full(self, mode: str) -> np.ndarray:
        """Energy indexed by weight code + 127 (NaN where not characterised)."""
        out = np.full(2 * (1 << (BITS - 1)) - 1, np.nan)
        out[self.weights + (1 << (BITS - 1)) - 1] = self.energy(mode)
        return out


@dataclass
class DelayTable:
    delay_ns: np.ndarray  # (255, 255): [weight code + 127, activation code + 127]; -1: unseen
    source: str

    @property
    def baseline_ns(self) -> float:
        return float(self.delay_ns.max())


class Characteriser:
    """Runs (or loads from the cache) the MAC characterisations, synthesising the MAC once."""

    def __init__(self, cache: str | Path | None, transitions: int, timed: int, seed: int):
        self.cache = Path(cache) if cache else frugal_cache() / "power_pruning"
        self.transitions, self.timed, self.seed = transitions, timed, seed
        self._mapped: MappedNetlist | None = None
        self.runs = self.hits = 0

    @property
    def mapped(self) -> MappedNetlist:
        if self._mapped is None:
            self._mapped = build_mac(MAC)
        return self._mapped

    def _key(self, *parts: object) -> Path:
        h = hashlib.sha256()
        for part in parts:
            h.update(
                part.tobytes() if isinstance(part, np.ndarray) else json.dumps(part, sort_keys=True).encode()
            )
        return self.cache / f"{h.hexdigest()[:32]}.npz"

    def _cached(self, path: Path) -> dict[str, np.ndarray] | None:
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                self.hits += 1
                return {k: f[k] for k in f.files}
        except (OSError, ValueError):
            return None  # a damaged entry is recomputed

    def _store(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    def energies(
        self, acts: np.ndarray, psums: np.ndarray, weights: np.ndarray, glitch: bool, progress: bool = False
    ) -> EnergyTable:
        cfg = CharacterizeConfig(
            mac=MAC,
            transitions=self.transitions,
            timed_transitions=self.timed if glitch else 0,
            weights=[int(w) for w in weights],
            seed=self.seed,
        )
        path = self._key("energy", asdict(cfg), acts.astype(np.int64), psums.astype(np.int64))
        got = self._cached(path)
        if got is None:
            self.runs += 1
            r = characterize_mac(cfg, activations=acts, mapped=self.mapped, progress=progress, psums=psums)
            got = {
                "weights": r.weights,
                "zero_delay_pj": r.energy_pj,
                "glitch_pj": r.timed_energy_pj if r.timed_energy_pj is not None else np.zeros(0),
                "fixed_pj": np.array([r.clock_energy_pj, r.leakage_energy_pj]),
            }
            self._store(path, got)
        return EnergyTable(
            got["weights"],
            got["zero_delay_pj"],
            got["glitch_pj"] if got["glitch_pj"].size else None,
            float(got["fixed_pj"][0]),
            float(got["fixed_pj"][1]),
        )

    def delays(self, transitions: int, progress: bool = False) -> DelayTable:
        cfg = CharacterizeConfig(mac=MAC, transitions=64, timed_transitions=transitions, seed=self.seed)
        path = self._key("delay", asdict(cfg))
        got = self._cached(path)
        if got is None:
            self.runs += 1
            r = characterize_mac(cfg, mapped=self.mapped, progress=progress)
            got = {"delay": r.delay_by_activation_ns}
            self._store(path, got)
        return DelayTable(got["delay"][1:, 1:], f"uniform stream, {transitions} transitions per weight")


def delays_from_file(path: str | Path) -> DelayTable:
    """The delay table of a ``frugalnn hw characterize-mac`` record (8-bit signed MAC with delays)."""
    field = "delay_characterisation"
    path = Path(path)
    if not path.is_file():
        raise FieldError(field, f"file {path} does not exist; make one with `frugalnn hw characterize-mac`")
    try:
        record = json.loads(path.read_text())
        results = record["results"]
        mac = results["config"]["mac"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise FieldError(field, f"{path} is not a mac_characterisation.json record") from None
    if mac.get("bits") != BITS:
        raise FieldError(
            field,
            f"{path} characterises a {mac.get('bits')}-bit MAC; PowerPruning here needs the 8-bit one "
            "(frugalnn hw characterize-mac --bits 8)",
        )
    if not (mac.get("weight_signed") and mac.get("activation_signed")):
        raise FieldError(field, f"{path} is for unsigned weights or activations; use the signed 8-bit MAC")
    delay = results.get("delay_by_activation_ns")
    weights = results.get("weights")
    if delay is None or weights is None:
        raise FieldError(field, f"{path} has no delay table; characterise with --timed-transitions > 0")
    delay, weights = np.asarray(delay, dtype=np.float64), np.asarray(weights, dtype=np.int64)
    if delay.shape != (len(weights), 256) or not np.isin(ALL_WEIGHTS, weights).all():
        raise FieldError(field, f"{path} must cover every weight value -127..127 and 256 activations")
    rows = np.searchsorted(weights, ALL_WEIGHTS) if np.all(np.diff(weights) > 0) else None
    if rows is None:
        raise FieldError(field, f"{path} lists its weights out of order")
    return DelayTable(delay[rows][:, 1:], f"file {path}")
