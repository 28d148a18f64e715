"""Canonical signed digits (CSD, Reitwiesner 1960): every integer as sum_k d_k 2^k with d_k in {-1, 0, 1}
and no two adjacent non-zero digits. The form has the fewest non-zero digits of any signed-digit form, so a
constant multiplication x*c costs nnz(c) - 1 adders (zero weights cost nothing).
"""

from __future__ import annotations

import numpy as np
import torch


def csd_digits(value: int) -> list[tuple[int, int]]:
    """Non-zero CSD digits of an integer as (shift, sign) pairs, lowest shift first."""
    out: list[tuple[int, int]] = []
    v = int(value)
    k = 0
    while v != 0:
        if v & 1:
            d = 2 - (v & 3)  # v mod 4 == 1 -> +1, == 3 -> -1: leaves the next bit zero (non-adjacent)
            out.append((k, d))
            v -= d
        v >>= 1
        k += 1
    return out


def csd_value(digits: list[tuple[int, int]]) -> int:
    return sum(sign << shift for shift, sign in digits)


def csd_cost_table(max_abs: int) -> np.ndarray:
    """Non-zero CSD digit count of every integer in [-max_abs, max_abs] (index = value + max_abs)."""
    return np.array([len(csd_digits(v)) for v in range(-max_abs, max_abs + 1)], dtype=np.int64)


def csd_cost(codes: torch.Tensor | np.ndarray) -> int:
    """Total non-zero CSD digits of an integer array (the adder count of its constant products + terms)."""
    arr = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.int64)
    if arr.size == 0:
        return 0
    m = int(np.abs(arr).max())
    return int(csd_cost_table(m)[arr.ravel() + m].sum())


def csd_cost_surrogate(scaled: torch.Tensor, max_abs: int) -> torch.Tensor:
    """Differentiable logic cost of weights on the code axis: the CSD digit count of the integer codes,
    linearly interpolated between neighbouring integers (equal to the exact count at every integer code,
    so its gradient pulls each weight toward the cheaper of its two neighbouring codes; zero costs 0)."""
    table = torch.as_tensor(csd_cost_table(max_abs), dtype=scaled.dtype, device=scaled.device)
    c = scaled.clamp(-max_abs, max_abs) + max_abs
    lo = c.detach().floor().clamp(max=2 * max_abs - 1)
    frac = c - lo
    lo_i = lo.long()
    return table[lo_i] * (1 - frac) + table[lo_i + 1] * frac
