import itertools

import numpy as np
import torch

from frugalnn.methods.logic_flatten.csd import (
    csd_cost,
    csd_cost_surrogate,
    csd_cost_table,
    csd_digits,
    csd_value,
)


def _fewest_signed_digits(v: int, width: int = 10) -> int:
    """Brute force over every signed-digit string of a given width (independent of the CSD algorithm)."""
    best = None
    for digits in itertools.product((-1, 0, 1), repeat=width):
        if sum(d << k for k, d in enumerate(digits)) == v:
            nnz = sum(1 for d in digits if d)
            best = nnz if best is None else min(best, nnz)
    return best


def test_csd_round_trips_every_8bit_value_and_is_non_adjacent():
    for v in range(-128, 256):
        digits = csd_digits(v)
        assert csd_value(digits) == v
        shifts = [k for k, _ in digits]
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:])), (v, digits)
        assert all(s in (-1, 1) for _, s in digits)


def test_csd_has_the_fewest_nonzero_digits():
    for v in range(-40, 41):
        assert len(csd_digits(v)) == _fewest_signed_digits(v, 8)


def test_cost_table_and_surrogate_agree_on_integer_codes():
    table = csd_cost_table(7)
    assert table[7] == 0 and table[7 + 7] == 2 and table[7 + 4] == 1 and table[7 - 3] == 2
    codes = torch.arange(-7, 8, dtype=torch.float32)
    assert torch.equal(csd_cost_surrogate(codes, 7), torch.as_tensor(table, dtype=torch.float32))
    assert csd_cost(np.array([[0, 3], [-4, 7]])) == 0 + 2 + 1 + 2
    x = torch.tensor([2.5], requires_grad=True)  # between 2 (1 digit) and 3 (2 digits): pulled down
    csd_cost_surrogate(x, 7).sum().backward()
    assert x.grad.item() > 0
