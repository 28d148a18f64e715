"""The (mu + lambda) encoder search, checkpointed so a killed run resumes to the same result.

Each generation (EncodingNet's public code, hal-cgp's MuPlusLambda): lambda offspring, each a point
mutation of the winner of a size-``tournament`` tournament among the parents; the mu best of parents
and offspring become the next parents (offspring first, so a neutral mutation replaces its parent:
CGP's genetic drift). The per-gene mutation rate falls linearly from ``mutation_start`` to
``mutation_end``. Offspring reuse their parent's normal equations (only changed output rows are
recomputed), so an evaluation costs a few popcounts instead of a full (outputs x 2^2B) GEMM.

State (parents' genomes, generation, random-generator state, history) is written atomically to
``search_state.json`` every ``checkpoint_every`` generations; fitness values are recomputed on
resume from the genomes (they are exact functions of them).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from frugalnn.core.io import atomic_write_json
from frugalnn.errors import CheckpointError
from frugalnn.methods.encoding_mac.cgp import (
    Fitness,
    Genome,
    Layout,
    Normal,
    Problem,
    fitness,
    mutate,
    partial_product_genome,
    random_genome,
)
from frugalnn.methods.encoding_mac.config import EncodingConfig
from frugalnn.methods.encoding_mac.encoder import Encoder, from_genome

STATE_FILE = "search_state.json"
SEARCH_FIELDS = (
    "bits", "threshold", "outputs", "kept_bits", "rows", "columns", "levels_back", "parents",
    "offspring", "tournament", "generations", "mutation_start", "mutation_end", "ridge", "init", "seed",
)  # fmt: skip


def layout_of(cfg: EncodingConfig) -> Layout:
    return Layout(2 * cfg.bits, cfg.rows, cfg.columns, cfg.levels_back, cfg.outputs)


def _search_key(cfg: EncodingConfig) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in SEARCH_FIELDS}


class _Individual:
    __slots__ = ("genome", "fit", "normal")

    def __init__(self, genome: Genome, fit: Fitness, normal: Normal) -> None:
        self.genome, self.fit, self.normal = genome, fit, normal


def _evaluate(cfg: EncodingConfig, layout: Layout, problem: Problem, g: Genome, parent: Normal | None):
    fit, normal = fitness(g, layout, problem, cfg.kept_bits, cfg.threshold, cfg.ridge, parent)
    return _Individual(g, fit, normal)


def _save(out: Path, cfg, gen, parents, rng, history, evaluations, seconds) -> None:  # noqa: ANN001
    atomic_write_json(
        out / STATE_FILE,
        {
            "search": _search_key(cfg),
            "generation": gen,
            "parents": [p.genome.dna() for p in parents],
            "rng": rng.bit_generator.state,
            "history": history,
            "evaluations": evaluations,
            "seconds": seconds,
        },
    )


def _load(out: Path, cfg: EncodingConfig) -> dict[str, Any] | None:
    path = out / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is corrupt ({err.msg}); delete it to restart the search") from None
    if state.get("search") != _search_key(cfg):
        raise CheckpointError(
            f"{path} belongs to a search with other settings; use another out folder or delete it"
        )
    return state


def search(
    cfg: EncodingConfig,
    out_dir: str | Path | None = None,
    progress: bool = True,
    _stop_after: int | None = None,
) -> tuple[Encoder, dict[str, Any]]:
    """Evolve an encoder; with ``out_dir`` checkpointed there and resumed from there.

    Returns the champion as an :class:`Encoder` and a record (history per generation, evaluations,
    evaluations per second, first generation that met the threshold). ``_stop_after`` ends the run
    after that many generations of this call, as a kill would (tests).
    """
    cfg.validate()
    layout = layout_of(cfg)
    problem = Problem.build(cfg.bits)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    state = _load(out, cfg) if out is not None else None
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    if state is None:
        init = partial_product_genome if cfg.init == "partial-products" else None
        genomes = [
            init(layout, cfg.bits, rng) if init else random_genome(layout, rng) for _ in range(cfg.parents)
        ]
        parents = [_evaluate(cfg, layout, problem, g, None) for g in genomes]
        gen, history, evaluations, seconds0 = 0, [], len(parents), 0.0
    else:
        rng.bit_generator.state = state["rng"]
        parents = [
            _evaluate(cfg, layout, problem, Genome.from_dna(d, layout), None) for d in state["parents"]
        ]
        gen, history = state["generation"], state["history"]
        evaluations, seconds0 = state["evaluations"], state["seconds"]
    parents.sort(key=lambda p: -p.fit.fitness)
    bar = tqdm(
        total=cfg.generations, initial=gen, desc=f"CGP {cfg.bits}-bit", disable=not progress, leave=False
    )
    done_here = 0
    while gen < cfg.generations:
        if _stop_after is not None and done_here >= _stop_after:
            break
        frac = gen / max(1, cfg.generations - 1)
        rate = cfg.mutation_start + (cfg.mutation_end - cfg.mutation_start) * frac
        children = []
        for _ in range(cfg.offspring):
            picks = rng.choice(len(parents), size=cfg.tournament, replace=False)
            mom = parents[int(min(picks))]  # parents are sorted best first
            child = mutate(mom.genome, layout, rate, rng)
            children.append(_evaluate(cfg, layout, problem, child, mom.normal))
        evaluations += len(children)
        pool = children + parents
        order = sorted(range(len(pool)), key=lambda k: -pool[k].fit.fitness)  # stable: offspring win ties
        parents = [pool[k] for k in order[: cfg.parents]]
        best = parents[0].fit
        gen += 1
        done_here += 1
        history.append(
            {
                "generation": gen,
                "fitness": best.fitness,
                "area": best.area,
                "max_re": best.max_re,
                "rate": rate,
            }
        )
        bar.update(1)
        bar.set_postfix(area=f"{best.area:.1f}", max_re=f"{best.max_re:.4f}")
        if out is not None and (gen % cfg.checkpoint_every == 0 or gen == cfg.generations):
            _save(out, cfg, gen, parents, rng, history, evaluations, seconds0 + time.perf_counter() - t0)
    bar.close()
    seconds = seconds0 + time.perf_counter() - t0
    best = parents[0]
    feasible = [h["generation"] for h in history if h["max_re"] <= cfg.threshold]
    record = {
        "config": cfg.to_dict(),
        "generation": gen,
        "finished": gen >= cfg.generations,
        "evaluations": evaluations,
        "seconds": seconds,
        "evaluations_per_s": evaluations / seconds if seconds > 0 else None,
        "first_feasible_generation": (0 if best.fit.max_re <= cfg.threshold and not history else None)
        if not feasible
        else feasible[0],
        "champion": asdict(best.fit) | {"kept": best.fit.kept},
        "history": history,
    }
    meta = {
        "threshold": cfg.threshold,
        "search_max_re": best.fit.max_re,
        "search_area": best.fit.area,
        "generation": gen,
        "seed": cfg.seed,
        "init": cfg.init,
    }
    encoder = from_genome(best.genome, layout, best.fit, cfg.bits, meta)
    return encoder, record
