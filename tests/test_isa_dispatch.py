"""Runtime ISA dispatch (dlkern/_isa.py): the level chosen at import, DLKERN_ISA, and the
kernels of every level this CPU runs against the NumPy reference.

The level tests start a fresh interpreter per level (a process loads one level's
modules, once); on a native build they skip, since it has one level."""
import os
import subprocess
import sys
import tempfile

import pytest

import dlkern
from dlkern import _isa, _isa_levels

PORTABLE = bool(_isa_levels.LEVELS)
portable_only = pytest.mark.skipif(not PORTABLE, reason="a native build has one ISA level")
native_only = pytest.mark.skipif(PORTABLE, reason="a portable build")


def cpu_levels():
    """The levels of this build that this CPU runs."""
    if not PORTABLE:
        return []
    best = _isa._cpu_best()
    return [lv for lv in _isa_levels.LEVELS if _isa.ORDER.index(lv) <= _isa.ORDER.index(best)]


def run_python(code, isa=None):
    env = dict(os.environ)
    env.pop(_isa.ENV, None)
    if isa is not None:
        env[_isa.ENV] = isa
    # Not from the source tree, whose dlkern/ (no compiled modules) would shadow the
    # installed one on the child's sys.path.
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tempfile.gettempdir())


# Run in the child: the level in use, which compiled files the process mapped, and a
# small set of kernels (forward and backward) against the NumPy reference, on shapes
# that reach the vectorized paths and their tails (AVX-512 pair softmax for short rows,
# the packed conv2d GEMM, pooling's 3x3 stride-2 path).
KERNELS = r"""
import os, sys
import numpy as np
import dlkern
from dlkern import functional as F, reference as R
from dlkern.testing import assert_close

level = dlkern.isa()
files = [m.__file__ for name, m in sys.modules.items()
         if name.startswith("dlkern._") and getattr(m, "__file__", "").endswith((".so", ".pyd"))]
assert files, "no compiled module loaded"
here = os.sep + os.path.join("_isa_levels", level) + os.sep
for f in files:
    if os.path.basename(f).startswith("_isa_probe"):
        continue
    assert here in f, (level, f)
with open("/proc/self/maps") as maps:  # no other level's library is mapped at all
    mapped = {line.split()[-1] for line in maps if "_isa_levels" in line}
assert all(here in m for m in mapped), (level, mapped)

rng = np.random.default_rng(0)
for dt in (np.float32, np.float64):
    def r(*shape):
        return rng.standard_normal(shape).astype(dt)

    x, w, b = r(2, 16, 9, 11), r(24, 16, 3, 3), r(24)
    for args in [dict(stride=1, padding=1), dict(stride=2, padding=1)]:
        y = F.conv2d(x, w, b, **args)
        assert_close(y, R.conv2d(x, w, b, **args), dtype=dt)
        g = r(*y.shape)
        for a, e in zip(F.conv2d_backward(g, x, w, **args), R.conv2d_backward(g, x, w, **args)):
            assert_close(a, e, dtype=dt)
    xs, ws = r(3, 3, 13, 13), r(8, 3, 5, 5)
    assert_close(F.conv2d(xs, ws), R.conv2d(xs, ws), dtype=dt)

    xl, wl, bl = r(33, 70), r(45, 70), r(45)
    assert_close(F.linear(xl, wl, bl), R.linear(xl, wl, bl), dtype=dt)
    gl = r(33, 45)
    for a, e in zip(F.linear_backward(gl, xl, wl), R.linear_backward(gl, xl, wl)):
        assert_close(a, e, dtype=dt)

    for shape in [(37, 1000), (64, 10), (5, 7)]:
        z = r(*shape)
        s = F.softmax(z, dim=-1)
        assert_close(s, R.softmax(z, dim=-1), dtype=dt)
        gz = r(*shape)
        assert_close(F.softmax_backward(gz, s, dim=-1), R.softmax_backward(gz, s, dim=-1),
                     dtype=dt)
        t = rng.integers(0, shape[1], shape[0])
        assert_close(F.cross_entropy(z, t), R.cross_entropy(z, t), dtype=dt)
        assert_close(F.cross_entropy_backward(1.0, z, t), R.cross_entropy_backward(1.0, z, t),
                     dtype=dt)

    xb, wb, bb = r(4, 8, 5, 7), r(8), r(8)
    y = F.batch_norm(xb, None, None, wb, bb, training=True)
    assert_close(y, R.batch_norm(xb, None, None, wb, bb, training=True), dtype=dt)
    gb = r(*xb.shape)
    for a, e in zip(F.batch_norm_backward(gb, xb, wb), R.batch_norm_backward(gb, xb, wb)):
        assert_close(a, e, dtype=dt)

    xp = r(2, 5, 17, 19)
    for args in [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2)]:
        y = F.max_pool2d(xp, **args)
        assert_close(y, R.max_pool2d(xp, **args), dtype=dt)
        gp = r(*y.shape)
        assert_close(F.max_pool2d_backward(gp, xp, **args),
                     R.max_pool2d_backward(gp, xp, **args), dtype=dt)
print("level", level)
"""


@portable_only
@pytest.mark.parametrize("level", ["baseline", "v3", "v4"])
def test_forced_level_loads_only_its_modules_and_matches_reference(level):
    if level not in _isa_levels.LEVELS:
        pytest.skip(f"this build has no {level} level")
    if level not in cpu_levels():
        pytest.skip(f"this CPU does not run {level}")
    done = run_python(KERNELS, isa=level)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["level", level]


@portable_only
def test_default_level_is_the_best_this_cpu_runs():
    done = run_python("import dlkern; print(dlkern.isa())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == cpu_levels()[-1]
    done = run_python("import dlkern; print(dlkern.isa())", isa="")  # empty = unset
    assert done.stdout.strip() == cpu_levels()[-1]


@portable_only
@pytest.mark.parametrize("value", ["avx512", "V4", "native"])
def test_unknown_level_raises_import_error_naming_the_variable(value):
    done = run_python("import dlkern", isa=value)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError"), done.stderr
    assert f"DLKERN_ISA={value!r}" in last and ", ".join(_isa_levels.LEVELS) in last


@native_only
def test_native_build_reports_native_and_refuses_a_forced_level():
    assert dlkern.isa() == "native"
    done = run_python("import dlkern; print(dlkern.isa())", isa="native")
    assert done.returncode == 0 and done.stdout.strip() == "native", done.stderr
    done = run_python("import dlkern", isa="baseline")
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and "DLKERN_ISA='baseline'" in last, done.stderr
    assert "native build" in last


def test_isa_names_a_level():
    assert dlkern.isa() in (("native",) if not PORTABLE else _isa_levels.LEVELS)
    if PORTABLE:
        assert dlkern.isa() in cpu_levels()


# The choice itself, for CPUs this machine is not: pure logic, any build.
LEVELS = ("baseline", "v3", "v4")


@pytest.mark.parametrize("cpu, want", [("baseline", "baseline"), ("v3", "v3"), ("v4", "v4")])
def test_choose_takes_the_best_level_the_cpu_runs(cpu, want):
    assert _isa.choose(LEVELS, cpu, "") == want


def test_choose_without_v3_falls_back_to_baseline_on_an_avx2_cpu():
    assert _isa.choose(("baseline", "v4"), "v3", "") == "baseline"


def test_choose_honours_a_forced_level_the_cpu_runs():
    assert _isa.choose(LEVELS, "v4", "baseline") == "baseline"
    assert _isa.choose(LEVELS, "v3", "v3") == "v3"


def test_choose_refuses_a_level_the_cpu_lacks():
    with pytest.raises(ImportError, match=r"DLKERN_ISA='v4' needs instructions this CPU "
                                          r"\(or OS\) lacks; available here: baseline, v3"):
        _isa.choose(LEVELS, "v3", "v4")


def test_choose_refuses_an_unknown_level():
    with pytest.raises(ImportError, match=r"DLKERN_ISA='sse2' is not a level of this build; "
                                          r"allowed: baseline, v3, v4"):
        _isa.choose(LEVELS, "v4", "sse2")
    with pytest.raises(ImportError, match=r"allowed: baseline, v4 .*: baseline\)"):
        _isa.choose(("baseline", "v4"), "v3", "v3")


def test_choose_refuses_a_build_whose_lowest_level_the_cpu_lacks():
    with pytest.raises(ImportError, match=r"need ISA level v4 or higher, .* only up to v3"):
        _isa.choose(("v4",), "v3", "")


def test_level_finder_names_a_missing_module(tmp_path):
    finder = _isa._LevelFinder(str(tmp_path), ["_conv2d"])
    assert finder.find_spec("dlkern.nn") is None  # not one of its modules: someone else's
    with pytest.raises(ImportError, match="dlkern._conv2d is missing from"):
        finder.find_spec("dlkern._conv2d")


def test_isa_is_public():
    assert "isa" in dlkern.__all__ and dlkern.isa is _isa.isa


def test_one_level_builds_need_no_probe(monkeypatch):
    monkeypatch.setattr(_isa_levels, "LEVELS", ("baseline",))  # as on non-x86 builds
    monkeypatch.setitem(sys.modules, "dlkern._isa_probe", None)  # importing it would fail
    assert _isa._cpu_best() == "baseline"


# The x86-64 psABI levels as Linux names the CPU flags (it lists AVX and AVX-512 ones
# only when the kernel saves their registers): an oracle independent of the probe.
PSABI_FLAGS = {
    "v3": {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3", "avx", "avx2",
           "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"},
    "v4": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}


@pytest.mark.skipif(not PORTABLE or "v3" not in _isa_levels.LEVELS
                    and "v4" not in _isa_levels.LEVELS, reason="no x86-64 CPU probe")
@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="Linux's CPU flags")
def test_probe_agrees_with_the_cpu_flags_linux_reports():
    with open("/proc/cpuinfo") as f:
        flags = next(set(line.split(":", 1)[1].split()) for line in f
                     if line.startswith("flags"))
    want = ("v4" if PSABI_FLAGS["v3"] | PSABI_FLAGS["v4"] <= flags
            else "v3" if PSABI_FLAGS["v3"] <= flags else "baseline")
    from dlkern import _isa_probe

    assert _isa_probe.best_level() == want
