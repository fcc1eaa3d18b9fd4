from __future__ import annotations

import pytest

from vlascore.scoring import wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (8, 10, 0.4901624, 0.9433178),  # textbook values for the Wilson score interval
        (0, 20, 0.0, 0.1611252),
        (20, 20, 0.8388748, 1.0),
        (1, 2, 0.0945312, 0.9054688),
    ],
)
def test_wilson_interval_matches_reference_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-6)


def test_wilson_interval_with_no_data_is_uninformative() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
