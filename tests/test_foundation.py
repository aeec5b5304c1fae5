"""The foundation: the row-major BLAS path every GEMM kernel uses, threads, checks."""
import numpy as np
import pytest

import dlkern
from dlkern import _blas, _checks
from dlkern.testing import assert_close


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (5, 3, 7), (17, 1, 4), (1, 9, 33), (64, 48, 31)])
def test_gemm_matches_numpy(dtype, trans_a, trans_b, m, n, k):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = _blas.gemm(a.T.copy() if trans_a else a, b.T.copy() if trans_b else b,
                     trans_a=trans_a, trans_b=trans_b)
    assert got.dtype == dtype
    assert_close(got, a.astype(np.float64) @ b.astype(np.float64), dtype=dtype)


def test_gemm_empty_inner_dimension_gives_zeros():
    out = _blas.gemm(np.zeros((3, 0), np.float32), np.zeros((0, 2), np.float32))
    np.testing.assert_array_equal(out, np.zeros((3, 2), np.float32))


def test_gemm_rejects_bad_input():
    with pytest.raises(TypeError, match="float32 or float64"):
        _blas.gemm(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="inner dimensions"):
        _blas.gemm(np.zeros((2, 3)), np.zeros((2, 3)))


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


def test_blas_dims_rejects_sizes_beyond_a_blas_int():
    _checks.blas_dims("f", (1, 2**31 - 1))
    with pytest.raises(ValueError, match=r"f: dimension 2147483648 is too large for BLAS"):
        _checks.blas_dims("f", (3, 2**31))


def test_one_thread_blas_restores_the_blas_threads_even_on_error():
    from threadpoolctl import threadpool_info

    from dlkern._threads import one_thread_blas

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    with pytest.raises(RuntimeError):
        with one_thread_blas():
            assert all(n == 1 for n in blas_threads())
            raise RuntimeError("inside")
    assert blas_threads() == before
