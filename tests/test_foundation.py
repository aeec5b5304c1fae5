"""The foundation: threads and shared argument checks (dlkern's GEMM: test_gemm.py)."""
import numpy as np
import pytest

import dlkern
from dlkern import _checks


def test_set_num_threads_round_trip():
    default = dlkern.get_num_threads()
    assert default >= 1
    try:
        dlkern.set_num_threads(1)
        assert dlkern.get_num_threads() == 1
    finally:
        dlkern.set_num_threads(None)
    assert dlkern.get_num_threads() == default


@pytest.mark.parametrize("bad", [0, -2])
def test_set_num_threads_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="positive"):
        dlkern.set_num_threads(bad)


def test_set_num_threads_rejects_non_int():
    with pytest.raises(TypeError, match="positive int"):
        dlkern.set_num_threads(1.5)


def test_environment_variable_sets_threads(tmp_path):
    import os
    import subprocess
    import sys

    code = "import dlkern; print(dlkern.get_num_threads())"
    env = dict(os.environ, DLKERN_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, cwd=tmp_path, check=True)
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_checks_name_the_argument():
    with pytest.raises(TypeError, match=r"f: x must be float32 or float64, got dtype int64"):
        _checks.float_array("f", "x", np.zeros(3, np.int64))
    with pytest.raises(TypeError, match=r"f: x must be a NumPy array"):
        _checks.float_array("f", "x", [1.0, 2.0])
    with pytest.raises(ValueError, match=r"f: stride must be >= 1, got \(1, 0\)"):
        _checks.int_tuple("f", "stride", (1, 0), minimum=1)
    with pytest.raises(TypeError, match=r"f: padding must be an int"):
        _checks.int_tuple("f", "padding", 1.0)
    with pytest.raises(TypeError, match="weight has dtype float64 but x has dtype float32"):
        _checks.same_dtype("f", "x", np.zeros(1, np.float32), weight=np.zeros(1))
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\), got shape \(3,\)"):
        _checks.ndim("f", "x", np.zeros(3), 4, "N, C, H, W")


def test_contiguous_keeps_shape_and_copies_only_when_needed():
    c = np.arange(6.0).reshape(2, 3)
    assert _checks.contiguous(c) is c
    f = np.asfortranarray(c)
    got = _checks.contiguous(f)
    assert got.flags.c_contiguous and np.array_equal(got, c)
    strided = c[:, ::2]
    assert _checks.contiguous(strided).flags.c_contiguous
    zero_d = np.array(3.0)
    assert _checks.contiguous(zero_d).shape == ()


def test_set_num_threads_limits_numpys_blas_and_restores_it():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before, "NumPy's BLAS should be visible to threadpoolctl"
    try:
        dlkern.set_num_threads(1)
        assert blas_threads() == [1] * len(before)
    finally:
        dlkern.set_num_threads(None)
    assert blas_threads() == before
