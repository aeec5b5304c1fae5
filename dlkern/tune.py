"""Hyperparameter search: random search and grid search, ranked by validation score.

A search space is a dict from hyperparameter name to a distribution (uniform,
log_uniform, int_uniform, choice) or a fixed value. The objective takes a dict of
hyperparameters and returns a validation score (a float, or a dict with a "score" entry
and anything else worth keeping). Trials come back as a list of dicts ranked best first:

    {"rank": 1, "trial": 7, "params": {...}, "score": 0.981, "status": "ok",
     "error": None, "result": <what the objective returned>, "seconds": 3.2}

A trial whose objective raises (Exception, not KeyboardInterrupt) or returns a score that
is NaN or infinite is recorded with status "failed" and its error, ranked after every
successful trial, and the search goes on. Random search is reproducible from its seed:
the sampled hyperparameters depend on the seed alone.
"""
import itertools
import math
import numbers
import time

import numpy as np

from dlkern import _checks
from dlkern.random import as_rng

def _real(fn, name, value):
    """A finite real number (search bounds must be finite)."""
    value = _checks.real(fn, name, value)
    if not math.isfinite(value):
        raise ValueError(f"{fn}: {name} must be finite, got {value}")
    return value


class Distribution:
    """A one-dimensional search space: sample(rng) draws one value."""

    def sample(self, rng):
        raise NotImplementedError


class Uniform(Distribution):
    def __init__(self, low, high):
        self.low, self.high = _real("uniform", "low", low), _real("uniform", "high", high)
        if self.high < self.low:
            raise ValueError(f"uniform: high must be >= low, got low={low}, high={high}")

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def __repr__(self):
        return f"uniform({self.low!r}, {self.high!r})"


class LogUniform(Distribution):
    """The exponent is uniform: every decade between low and high is equally likely
    (the right prior for learning rates and weight decays)."""

    def __init__(self, low, high):
        self.low = _real("log_uniform", "low", low)
        self.high = _real("log_uniform", "high", high)
        if self.low <= 0:
            raise ValueError(f"log_uniform: low must be > 0, got {low}")
        if self.high < self.low:
            raise ValueError(f"log_uniform: high must be >= low, got low={low}, high={high}")

    def sample(self, rng):
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return min(max(value, self.low), self.high)  # exp(log(x)) may miss x by an ulp

    def __repr__(self):
        return f"log_uniform({self.low!r}, {self.high!r})"


class IntUniform(Distribution):
    """A uniformly drawn int in [low, high], both ends included."""

    def __init__(self, low, high):
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"int_uniform: {name} must be an int, got {v!r}")
        if high < low:
            raise ValueError(f"int_uniform: high must be >= low, got low={low}, high={high}")
        self.low, self.high = int(low), int(high)

    def sample(self, rng):
        return int(rng.integers(self.low, self.high + 1))

    def __repr__(self):
        return f"int_uniform({self.low}, {self.high})"


class Choice(Distribution):
    """One of the given options, each equally likely (returned as given, not converted)."""

    def __init__(self, options):
        if isinstance(options, (str, bytes)) or not hasattr(options, "__len__"):
            raise TypeError(f"choice: options must be a sequence, got {options!r}")
        self.options = list(options)
        if not self.options:
            raise ValueError("choice: options must not be empty")

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def __repr__(self):
        return f"choice({self.options!r})"


def uniform(low, high):
    """A float drawn uniformly from [low, high)."""
    return Uniform(low, high)


def log_uniform(low, high):
    """A float whose logarithm is uniform between log(low) and log(high); low > 0."""
    return LogUniform(low, high)


def int_uniform(low, high):
    """An int drawn uniformly from low..high inclusive."""
    return IntUniform(low, high)


def choice(options):
    """One of options, uniformly."""
    return Choice(options)


def _check_common(fn, objective, mode):
    if not callable(objective):
        raise TypeError(f"{fn}: objective must be callable(params) -> score, "
                        f"got {type(objective).__name__}")
    if mode not in ("max", "min"):
        raise ValueError(f"{fn}: mode must be 'max' (higher score is better) or 'min', "
                         f"got {mode!r}")


def _run_trial(objective, index, params):
    start = time.perf_counter()
    trial = {"trial": index, "params": params, "score": math.nan, "status": "failed",
             "error": None, "result": None, "seconds": 0.0}
    try:
        result = objective(dict(params))
        trial["result"] = result
        if isinstance(result, dict):
            if "score" not in result:
                raise KeyError("the objective returned a dict without a 'score' entry")
            score = result["score"]
        else:
            score = result
        score = float(score)
        if math.isfinite(score):
            trial["score"], trial["status"] = score, "ok"
        else:
            trial["error"] = f"the objective returned a non-finite score ({score})"
    except Exception as exc:  # a failing configuration must not end the search
        trial["error"] = f"{type(exc).__name__}: {exc}"
    trial["seconds"] = time.perf_counter() - start
    return trial


def _format_value(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value) if isinstance(value, str) else str(value)


def _report(fn, trial, n_trials, best):
    params = ", ".join(f"{k}={_format_value(v)}" for k, v in trial["params"].items())
    head = f"[{fn}] trial {trial['trial'] + 1}/{n_trials}  {params}"
    if trial["status"] == "ok":
        outcome = f"score={trial['score']:.6g}  best={best:.6g}"
    else:
        outcome = f"FAILED ({trial['error']})"
    print(f"{head}  {outcome}  ({trial['seconds']:.2f}s)", flush=True)


def _search(fn, objective, configurations, n_trials, mode, verbose):
    trials = []
    best = math.nan
    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
    for index, params in enumerate(configurations):
        trial = _run_trial(objective, index, params)
        if trial["status"] == "ok" and (math.isnan(best) or better(trial["score"], best)):
            best = trial["score"]
        trials.append(trial)
        if verbose:
            _report(fn, trial, n_trials, best)
    return rank_trials(trials, mode)


def rank_trials(trials, mode="max"):
    """Sort trials best first (failed trials last, in trial order) and set their "rank"."""
    sign = -1.0 if mode == "max" else 1.0
    ok = sorted((t for t in trials if t["status"] == "ok"),
                key=lambda t: (sign * t["score"], t["trial"]))
    failed = sorted((t for t in trials if t["status"] != "ok"), key=lambda t: t["trial"])
    ranked = ok + failed
    for rank, trial in enumerate(ranked, start=1):
        trial["rank"] = rank
    return ranked


def random_search(objective, space, n_trials, seed=None, mode="max", verbose=True):
    """Evaluate objective on n_trials configurations drawn from space; trials best first.

    space: {name: distribution or fixed value}; distributions are drawn in the dict's
    order, so a seed (int or Generator) fixes the whole sequence of configurations.
    mode: "max" when a higher score is better (accuracy), "min" for losses.
    verbose: print one line per trial.
    """
    fn = "random_search"
    _check_common(fn, objective, mode)
    if not isinstance(space, dict):
        raise TypeError(f"{fn}: space must be a dict of name -> distribution, "
                        f"got {type(space).__name__}")
    for name, dist in space.items():
        if isinstance(dist, (list, tuple, np.ndarray)):
            raise TypeError(f"{fn}: space[{name!r}] is a {type(dist).__name__}; use "
                            f"choice({list(dist)!r}) to draw from options")
    if isinstance(n_trials, bool) or not isinstance(n_trials, numbers.Integral) or n_trials < 1:
        raise ValueError(f"{fn}: n_trials must be a positive int, got {n_trials!r}")
    rng = as_rng(seed)

    def configurations():
        for _ in range(int(n_trials)):
            yield {name: dist.sample(rng) if isinstance(dist, Distribution) else dist
                   for name, dist in space.items()}

    return _search(fn, objective, configurations(), int(n_trials), mode, verbose)


def grid_search(objective, grid, mode="max", verbose=True):
    """Evaluate objective on every combination of grid's values; trials best first.

    grid: {name: list of values}; combinations run in itertools.product order over the
    dict's keys (the last key varies fastest)."""
    fn = "grid_search"
    _check_common(fn, objective, mode)
    if not isinstance(grid, dict):
        raise TypeError(f"{fn}: grid must be a dict of name -> list of values, "
                        f"got {type(grid).__name__}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, np.ndarray,
                                                                       range)):
            raise TypeError(f"{fn}: grid[{name!r}] must be a list of values, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"{fn}: grid[{name!r}] is empty")
    names = list(grid)
    combos = [dict(zip(names, values)) for values in itertools.product(*grid.values())]
    return _search(fn, objective, combos, len(combos), mode, verbose)


__all__ = ["uniform", "log_uniform", "int_uniform", "choice", "random_search", "grid_search",
           "rank_trials", "Distribution"]
