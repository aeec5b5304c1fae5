"""Hyperparameter search: distributions, reproducibility, ranking, failures, progress."""
import math

import numpy as np
import pytest

from dlkern import tune

SPACE = {
    "lr": tune.log_uniform(1e-4, 1e-1),
    "dropout": tune.uniform(0.0, 0.5),
    "layers": tune.int_uniform(1, 4),
    "act": tune.choice(["relu", "tanh", "elu"]),
    "epochs": 5,  # a fixed value
}


def _score(p):
    return -abs(math.log10(p["lr"]) + 2.5) - p["dropout"] + 0.1 * p["layers"]


def test_random_search_is_reproducible_from_seed():
    a = tune.random_search(_score, SPACE, 12, seed=3, verbose=False)
    b = tune.random_search(_score, SPACE, 12, seed=3, verbose=False)
    c = tune.random_search(_score, SPACE, 12, seed=4, verbose=False)
    assert [t["params"] for t in a] == [t["params"] for t in b]
    assert [t["score"] for t in a] == [t["score"] for t in b]
    assert sorted(t["params"]["lr"] for t in a) != sorted(t["params"]["lr"] for t in c)
    # the configurations depend on the seed only, not on what the objective returns
    d = tune.random_search(lambda p: 0.0, SPACE, 12, seed=3, verbose=False)
    by_trial = lambda trials: [t["params"] for t in sorted(trials, key=lambda t: t["trial"])]
    assert by_trial(a) == by_trial(d)
    g = tune.random_search(_score, SPACE, 12, seed=np.random.default_rng(3), verbose=False)
    assert by_trial(g) == by_trial(a)


def test_sampled_values_have_the_right_types_and_ranges():
    trials = tune.random_search(_score, SPACE, 200, seed=0, verbose=False)
    for t in trials:
        p = t["params"]
        assert isinstance(p["lr"], float) and 1e-4 <= p["lr"] <= 1e-1
        assert isinstance(p["dropout"], float) and 0.0 <= p["dropout"] < 0.5
        assert type(p["layers"]) is int and 1 <= p["layers"] <= 4
        assert p["act"] in ("relu", "tanh", "elu") and p["epochs"] == 5
    assert {t["params"]["layers"] for t in trials} == {1, 2, 3, 4}  # both ends included
    assert {t["params"]["act"] for t in trials} == {"relu", "tanh", "elu"}


@pytest.mark.parametrize("mode", ["max", "min"])
def test_trials_are_ranked_best_first(mode):
    scores = [0.3, 0.9, 0.1, 0.9, 0.5]
    trials = tune.grid_search(lambda p: scores[p["i"]], {"i": list(range(5))}, mode=mode,
                              verbose=False)
    assert [t["rank"] for t in trials] == [1, 2, 3, 4, 5]
    got = [t["params"]["i"] for t in trials]
    # ties keep trial order
    assert got == ([1, 3, 4, 0, 2] if mode == "max" else [2, 0, 4, 1, 3])
    assert [t["score"] for t in trials] == [scores[i] for i in got]
    assert all(t["status"] == "ok" and t["error"] is None for t in trials)


def test_grid_search_covers_the_product_in_order():
    seen = []
    trials = tune.grid_search(lambda p: seen.append(dict(p)) or p["a"] * p["b"],
                              {"a": [1, 2, 3], "b": (10, 20)}, verbose=False)
    assert seen == [{"a": a, "b": b} for a in (1, 2, 3) for b in (10, 20)]
    assert trials[0]["params"] == {"a": 3, "b": 20} and trials[0]["score"] == 60
    assert len(trials) == 6 and sorted(t["trial"] for t in trials) == list(range(6))


def test_log_uniform_covers_decades_uniformly():
    rng = np.random.default_rng(2024)
    dist = tune.log_uniform(1e-5, 1e-1)
    samples = np.array([dist.sample(rng) for _ in range(40000)])
    assert samples.min() >= 1e-5 and samples.max() <= 1e-1
    counts = np.histogram(np.log10(samples), bins=4, range=(-5, -1))[0]
    # binomial sd = sqrt(40000 * 1/4 * 3/4) = 87: +-600 is ~7 sd (and the seed is fixed)
    np.testing.assert_allclose(counts, 10000, atol=600)
    # a plain uniform would put ~90% of its draws in the top decade
    plain = np.array([tune.uniform(1e-5, 1e-1).sample(rng) for _ in range(4000)])
    assert np.mean(plain > 1e-2) > 0.85


def test_int_uniform_and_choice_are_uniform():
    rng = np.random.default_rng(1)
    ints = [tune.int_uniform(-1, 1).sample(rng) for _ in range(6000)]
    np.testing.assert_allclose(np.bincount(np.array(ints) + 1), 2000, atol=200)
    options = [object(), object()]
    picks = [tune.choice(options).sample(rng) for _ in range(2000)]
    assert all(any(p is o for o in options) for p in picks)  # the objects themselves
    assert abs(sum(p is options[0] for p in picks) - 1000) < 150


def test_failures_are_recorded_ranked_last_and_not_fatal():
    def objective(p):
        if p["k"] == 0:
            raise RuntimeError("diverged")
        if p["k"] == 1:
            return float("nan")
        if p["k"] == 2:
            return {"loss": 1.0}  # no score
        if p["k"] == 3:
            return math.inf
        return {"score": p["k"] / 10, "epochs": 3}

    trials = tune.grid_search(objective, {"k": [0, 1, 2, 3, 4, 5]}, verbose=False)
    assert [t["params"]["k"] for t in trials] == [5, 4, 0, 1, 2, 3]
    assert [t["status"] for t in trials] == ["ok", "ok"] + ["failed"] * 4
    assert trials[0]["result"] == {"score": 0.5, "epochs": 3} and trials[0]["score"] == 0.5
    errors = {t["params"]["k"]: t["error"] for t in trials[2:]}
    assert "RuntimeError: diverged" in errors[0]
    assert "nan" in errors[1] and "score" in errors[2] and "inf" in errors[3]
    assert all(math.isnan(t["score"]) for t in trials[2:])
    assert [t["rank"] for t in trials] == [1, 2, 3, 4, 5, 6]


def test_all_trials_failing_still_returns():
    trials = tune.random_search(lambda p: 1 / 0, {"x": tune.uniform(0, 1)}, 3, seed=0,
                                verbose=False)
    assert [t["status"] for t in trials] == ["failed"] * 3
    assert "ZeroDivisionError" in trials[0]["error"]


def test_keyboard_interrupt_is_not_swallowed():
    def objective(p):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tune.grid_search(objective, {"x": [1]}, verbose=False)


def test_progress_prints_one_line_per_trial(capsys):
    tune.random_search(_score, SPACE, 4, seed=0)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("[random_search] trial 1/4") and "lr=" in lines[0]
    assert "score=" in lines[0] and "best=" in lines[0]
    tune.grid_search(lambda p: 1 / 0, {"a": [1, 2]})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "FAILED (ZeroDivisionError" in lines[1]
    tune.random_search(_score, SPACE, 3, seed=0, verbose=False)
    assert capsys.readouterr().out == ""


def test_bad_arguments():
    with pytest.raises(ValueError, match="low must be > 0"):
        tune.log_uniform(0, 1)
    with pytest.raises(ValueError, match="high must be >= low"):
        tune.uniform(1, 0)
    with pytest.raises(ValueError, match="high must be >= low"):
        tune.log_uniform(1e-2, 1e-3)
    with pytest.raises(TypeError, match="int"):
        tune.int_uniform(1, 2.5)
    with pytest.raises(ValueError, match="empty"):
        tune.choice([])
    with pytest.raises(TypeError, match="choice"):
        tune.random_search(_score, {"lr": [0.1, 0.01]}, 3)
    with pytest.raises(ValueError, match="n_trials"):
        tune.random_search(_score, SPACE, 0)
    with pytest.raises(ValueError, match="mode"):
        tune.random_search(_score, SPACE, 2, mode="best")
    with pytest.raises(TypeError, match="objective"):
        tune.grid_search(None, {"a": [1]})
    with pytest.raises(ValueError, match="empty"):
        tune.grid_search(_score, {"a": []})
    with pytest.raises(TypeError, match="list of values"):
        tune.grid_search(_score, {"a": 3})
