"""Runtime ISA dispatch: which build of the C kernels this process runs.

A native build (the default source build, -march=native) has one set of compiled
modules, dlkern/_conv2d.so etc., and nothing happens here. A portable build
(DLKERN_NATIVE=OFF, as for wheels) holds one set per ISA level in
dlkern/_isa_levels/<level>/: baseline x86-64, x86-64-v3 (AVX2, FMA) and x86-64-v4
(AVX-512). At import, before anything else in dlkern loads a compiled module, a finder
is put on sys.meta_path that resolves `dlkern._conv2d` etc. to the chosen level's
files, so `from dlkern import _conv2d` stays as it is everywhere else. The modules of
other levels are never loaded: they may run their instructions in library
constructors.

DLKERN_ISA=baseline|v3|v4 forces a level (for tests, or to step around a problem);
unset or empty, the best level the CPU and OS support is used.
"""
import os
import sys

from dlkern import _isa_levels

#: Every level a build can have, lowest first; a CPU that runs one runs those before it.
ORDER = ("baseline", "v3", "v4")
ENV = "DLKERN_ISA"

_level = None


def isa():
    """The ISA level of the C kernels in use: 'baseline', 'v3' or 'v4' in a portable build
    (x86-64, x86-64-v3 with AVX2 and FMA, x86-64-v4 with AVX-512), 'native' in a build
    compiled for its building CPU. DLKERN_ISA=baseline|v3|v4 forces a portable level."""
    return _level


def _cpu_best():
    if _isa_levels.LEVELS == ("baseline",):  # nothing to choose (e.g. not x86-64): no probe
        return "baseline"
    from dlkern import _isa_probe

    return _isa_probe.best_level()


def choose(levels, cpu_best, forced):
    """The level to load from a build's levels, the CPU's best and DLKERN_ISA's value."""
    runnable = [lv for lv in levels if ORDER.index(lv) <= ORDER.index(cpu_best)]
    if not runnable:  # a build without baseline (DLKERN_ISA_LEVELS) on an older CPU
        raise ImportError(f"dlkern: this build's kernels need ISA level {levels[0]} or "
                          f"higher, and this CPU (or OS) runs only up to {cpu_best}")
    if not forced:
        return runnable[-1]
    if forced not in levels:
        raise ImportError(f"dlkern: {ENV}={forced!r} is not a level of this build; "
                          f"allowed: {', '.join(levels)} (or unset {ENV} for the best "
                          f"this CPU supports: {runnable[-1]})")
    if forced not in runnable:
        raise ImportError(f"dlkern: {ENV}={forced!r} needs instructions this CPU (or OS) "
                          f"lacks; available here: {', '.join(runnable)}")
    return forced


class _LevelFinder:
    """Finds dlkern's compiled modules in one level's directory (a meta path finder
    needs only find_spec)."""

    dlkern_level_finder = True  # marks it for _select, should dlkern be imported again

    def __init__(self, directory, modules):
        self.directory = directory
        self.names = frozenset("dlkern." + m for m in modules)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        from importlib.machinery import PathFinder  # here: a native build never needs it

        spec = PathFinder.find_spec(fullname, [self.directory])
        if spec is None:
            raise ImportError(f"dlkern: {fullname} is missing from {self.directory} "
                              "(a broken install?)", name=fullname)
        return spec


def _select():
    global _level
    forced = os.environ.get(ENV, "").strip()
    if not _isa_levels.LEVELS:
        if forced and forced != "native":
            raise ImportError(f"dlkern: {ENV}={forced!r}, but this dlkern is a native build "
                              f"(-march=native, one level: 'native'); unset {ENV}, or "
                              "install a portable build (DLKERN_NATIVE=OFF) to choose levels")
        _level = "native"
        return
    _level = choose(_isa_levels.LEVELS, _cpu_best(), forced)
    directory = os.path.join(os.path.dirname(_isa_levels.__file__), _level)
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "dlkern_level_finder", False)]
    sys.meta_path.insert(0, _LevelFinder(directory, _isa_levels.MODULES))
