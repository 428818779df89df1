"""Comparing predict() answers: torch-free, so that the server tests run in the light install too."""
from __future__ import annotations

TOL = 1e-5  # on scores and logits: "the same answer"


def assert_same(a, b, tol=TOL, where="output", rel=0.0):
    """Equal structure, keys, labels and strings; numbers within `tol` + `rel` x |b|.

    A reload is checked with rel=1e-6 (and a tiny tol), not bit for bit: MKL's matrix products round
    according to where the weights lie in memory (bit-reproducible only under MKL_CBWR's strict mode),
    and a reloaded model's weights lie elsewhere; on a 2-thread AMD EPYC a regression value differed
    in its last digits."""
    if isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= tol + rel * abs(b), f"{where}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], tol, f"{where}.{k}", rel)
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, tol, f"{where}[{i}]", rel)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_reloaded_same(a, b, where="reloaded"):
    """A reloaded model's answer `a` against the trained one's `b`: the same to float rounding."""
    assert_same(a, b, tol=1e-9, where=where, rel=1e-6)
