"""Optimizers: stepped beside torch.optim on the same gradients, checkpoints, groups, errors."""
import numpy as np
import pytest

from dlkern import optim
from dlkern.nn.parameter import Parameter

SHAPES = [(3, 4), (5,), (2, 3, 2)]
STEPS = 6
# float64 must agree to rounding; float32 to a few ulps accumulated over the steps.
TOL = {np.float32: dict(rtol=2e-6, atol=2e-7), np.float64: dict(rtol=1e-12, atol=1e-14)}

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2)),
    ("Adagrad", dict(lr=0.1, eps=1e-3, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.7, eps=1e-4, weight_decay=0.05)),
    ("Adadelta", dict(maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1, eps=1e-4)),
    ("RMSprop", dict(maximize=True, momentum=0.3)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True)),
    ("AdamW", dict(lr=0.02, betas=(0.5, 0.9), maximize=True)),
]


def _case_id(case):
    name, kwargs = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


def _data(dtype, seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _run_torch(torch, name, kwargs, init, grads):
    params = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    opt = getattr(torch.optim, name)(params, foreach=False, **kwargs)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
    return [p.detach().numpy() for p in params], opt


def _run_dlkern(name, kwargs, init, grads, params=None, opt=None):
    if params is None:
        params = [Parameter(x.copy()) for x in init]
        opt = getattr(optim, name)(params, **kwargs)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        opt.step()
    return params, opt


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matches_torch_step_for_step(case, dtype):
    torch = pytest.importorskip("torch")
    name, kwargs = case
    init, grads = _data(dtype)
    expected, topt = _run_torch(torch, name, kwargs, init, grads)
    params, opt = _run_dlkern(name, kwargs, init, grads)
    for p, e in zip(params, expected):
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, e, **TOL[dtype])
    # The optimizer state (moments, buffers, step counts) agrees too.
    for p, tp in zip(params, topt.param_groups[0]["params"]):
        tstate = topt.state[tp]
        assert set(opt.state[p]) == set(tstate)
        for key, value in tstate.items():
            np.testing.assert_allclose(np.asarray(opt.state[p][key]), value.numpy(),
                                       err_msg=key, **TOL[dtype])


@pytest.mark.parametrize("case", CASES[1::3], ids=_case_id)
def test_state_dict_round_trip_resumes_exactly(case):
    name, kwargs = case
    init, grads = _data(np.float64, seed=1, steps=8)
    uninterrupted, _ = _run_dlkern(name, kwargs, init, grads)

    params, opt = _run_dlkern(name, kwargs, init, grads[:3])
    saved_state = opt.state_dict()
    saved_data = [p.data.copy() for p in params]
    opt.step()  # steps after saving must not leak into the saved dict
    fresh = [Parameter(x) for x in saved_data]
    fresh_opt = getattr(optim, name)(fresh, lr=123.0)  # options come from the state dict
    fresh_opt.load_state_dict(saved_state)
    resumed, _ = _run_dlkern(name, kwargs, init, grads[3:], params=fresh, opt=fresh_opt)
    for r, u in zip(resumed, uninterrupted):
        np.testing.assert_array_equal(r.data, u.data)


def test_state_dict_uses_torch_layout():
    torch = pytest.importorskip("torch")
    init, grads = _data(np.float64)
    a, b = [Parameter(x.copy()) for x in init[:2]]
    opt = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.01)
    a.grad, b.grad = grads[0][0], grads[0][1]
    opt.step()
    ta, tb = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init[:2]]
    topt = torch.optim.Adam([{"params": [ta]}, {"params": [tb], "lr": 0.5}], lr=0.01)
    ta.grad, tb.grad = torch.from_numpy(grads[0][0]), torch.from_numpy(grads[0][1])
    topt.step()
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert [g["params"] for g in ours["param_groups"]] == [[0], [1]]
    assert [g["params"] for g in theirs["param_groups"]] == [[0], [1]]
    assert set(ours["state"]) == set(theirs["state"]) == {0, 1}
    for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
        assert [g[key] for g in ours["param_groups"]] == [g[key] for g in theirs["param_groups"]]
    # A torch state dict converted to NumPy loads and continues identically.
    converted = {
        "state": {i: {k: v.numpy() for k, v in s.items()} for i, s in theirs["state"].items()},
        "param_groups": theirs["param_groups"],
    }
    c, d = Parameter(ta.detach().numpy().copy()), Parameter(tb.detach().numpy().copy())
    opt2 = optim.Adam([{"params": [c]}, {"params": [d]}])
    opt2.load_state_dict(converted)
    assert opt2.param_groups[1]["lr"] == 0.5
    c.grad, d.grad = grads[1][0], grads[1][1]
    ta.grad, tb.grad = torch.from_numpy(grads[1][0]), torch.from_numpy(grads[1][1])
    opt2.step()
    topt.step()
    np.testing.assert_allclose(c.data, ta.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d.data, tb.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_load_state_dict_casts_to_parameter_dtype_and_checks_sizes():
    p = Parameter(np.ones(3, np.float32))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    saved = {"state": {0: {"momentum_buffer": np.full(3, 0.5)}},
             "param_groups": [{**opt.state_dict()["param_groups"][0]}]}
    opt.load_state_dict(saved)
    assert opt.state[p]["momentum_buffer"].dtype == np.float32
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="has 2 parameters"):
        opt.load_state_dict({"state": {}, "param_groups": [
            {**saved["param_groups"][0], "params": [0, 1]}]})
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({"state": {0: {"momentum_buffer": np.ones(4)}},
                             "param_groups": saved["param_groups"]})


def test_param_groups_with_different_lrs_match_torch():
    torch = pytest.importorskip("torch")
    init, grads = _data(np.float64)
    params = [Parameter(x.copy()) for x in init]
    tparams = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    opt = optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.5, "momentum": 0.1}],
                    lr=0.01, momentum=0.9)
    topt = torch.optim.SGD([{"params": tparams[:1]},
                            {"params": tparams[1:], "lr": 0.5, "momentum": 0.1}],
                           lr=0.01, momentum=0.9, foreach=False)
    for step_grads in grads:
        for p, tp, g in zip(params, tparams, step_grads):
            p.grad, tp.grad = g.copy(), torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[0]["lr"] == 0.01
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_add_param_group_and_named_parameters():
    a, b = Parameter(np.zeros(2)), Parameter(np.zeros(3))
    opt = optim.Adam([("w", a)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["w"]
    opt.add_param_group({"params": b, "lr": 0.2})
    assert opt.param_groups[1]["params"] == [b]
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.add_param_group({"params": [Parameter(np.zeros(1))], "lr": -1.0})


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW"])
def test_frozen_and_gradless_parameters_are_skipped(name):
    frozen = Parameter(np.ones(3), requires_grad=False)
    frozen.grad = np.ones(3)  # even a stale gradient must not move it
    no_grad = Parameter(np.ones(3))
    live = Parameter(np.ones(3))
    live.grad = np.full(3, 0.5)
    opt = getattr(optim, name)([frozen, no_grad, live], lr=0.1)
    opt.step()
    np.testing.assert_array_equal(frozen.data, np.ones(3))
    np.testing.assert_array_equal(no_grad.data, np.ones(3))
    assert not np.array_equal(live.data, np.ones(3))
    assert no_grad not in opt.state or name == "Adagrad"  # Adagrad creates state eagerly


def test_updates_in_place_in_parameter_dtype():
    data = np.ones((2, 3), np.float32)
    p = Parameter(data)
    p.grad = np.ones((2, 3), np.float64)  # a float64 gradient is applied in float32
    opt = optim.Adam([p], lr=0.1)
    opt.step()
    assert p.data is data and data.dtype == np.float32
    np.testing.assert_allclose(data, 0.9, rtol=1e-6)


def test_zero_grad():
    p, q = Parameter(np.ones(2)), Parameter(np.ones(2))
    p.grad, q.grad = np.ones(2), np.ones(2)
    g = q.grad
    opt = optim.SGD([p, q], lr=0.1)
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and not p.grad.any() and q.grad is g
    opt.zero_grad()
    assert p.grad is None and q.grad is None


def test_closure_is_called_and_its_loss_returned():
    p = Parameter(np.array([3.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        p.grad = 2 * p.data  # d/dp p^2
        return float(p.data[0] ** 2)

    assert opt.step(closure) == 9.0
    np.testing.assert_allclose(p.data, [1.5])


def test_sgd_minimizes_a_quadratic():
    target = np.array([1.0, -2.0, 3.0])
    p = Parameter(np.zeros(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    for _ in range(200):
        p.grad = p.data - target
        opt.step()
    np.testing.assert_allclose(p.data, target, atol=1e-6)


BAD = [
    ("SGD", dict(lr=-0.1), "lr"),
    ("SGD", dict(momentum=-0.1), "momentum"),
    ("SGD", dict(weight_decay=-1e-4), "weight_decay"),
    ("SGD", dict(nesterov=True), "nesterov"),
    ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1), "nesterov"),
    ("Adagrad", dict(lr_decay=-1), "lr_decay"),
    ("Adagrad", dict(initial_accumulator_value=-1), "initial_accumulator_value"),
    ("Adagrad", dict(eps=-1), "eps"),
    ("Adadelta", dict(rho=1.5), "rho"),
    ("Adadelta", dict(rho=-0.1), "rho"),
    ("Adadelta", dict(lr=-1), "lr"),
    ("RMSprop", dict(alpha=-0.1), "alpha"),
    ("RMSprop", dict(momentum=-0.1), "momentum"),
    ("RMSprop", dict(eps=-1e-8), "eps"),
    ("Adam", dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    ("Adam", dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    ("Adam", dict(eps=-1), "eps"),
    ("Adam", dict(weight_decay=-1), "weight_decay"),
    ("AdamW", dict(lr=-1e-3), "lr"),
    ("AdamW", dict(betas=(0.9, 1.0)), r"betas\[1\]"),
]


@pytest.mark.parametrize("name,kwargs,match", BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_bad_hyperparameters_raise_value_error(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(optim, name)([Parameter(np.zeros(2))], **kwargs)


@pytest.mark.parametrize("name,kwargs,match", BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_torch_rejects_the_same_hyperparameters(name, kwargs, match):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_boundary_hyperparameters_are_accepted():
    p = [Parameter(np.zeros(2))]
    optim.Adam(p, betas=(0.0, 0.0), eps=0.0, lr=0.0)
    optim.Adadelta(p, rho=1.0)
    optim.Adadelta(p, rho=0.0)
    optim.SGD(p, momentum=0.0, dampening=0.5)


def test_bad_params_argument():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(Parameter(np.zeros(2)), lr=0.1)
    with pytest.raises(TypeError, match="Parameters"):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match="set"):
        optim.SGD({Parameter(np.zeros(2))}, lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        p = Parameter(np.zeros(2))
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="real number"):
        optim.SGD([Parameter(np.zeros(2))], lr="0.1")


def test_gradient_shape_mismatch_is_an_error():
    p = Parameter(np.zeros(3))
    p.grad = np.zeros(4)
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(4,\)"):
        optim.SGD([p], lr=0.1).step()


def test_load_state_dict_accepts_string_indices():
    init, grads = _data(np.float64, steps=4)
    params, opt = _run_dlkern("RMSprop", dict(momentum=0.5), init, grads[:2])
    saved = opt.state_dict()
    saved["state"] = {str(k): v for k, v in saved["state"].items()}  # as after JSON / npz
    fresh = [Parameter(p.data.copy()) for p in params]
    fresh_opt = optim.RMSprop(fresh)
    fresh_opt.load_state_dict(saved)
    _run_dlkern("RMSprop", {}, None, grads[2:], params=fresh, opt=fresh_opt)
    _run_dlkern("RMSprop", {}, None, grads[2:], params=params, opt=opt)
    for a, b in zip(fresh, params):
        np.testing.assert_array_equal(a.data, b.data)


def test_training_run_with_scheduler_and_clipping_resumes_bit_for_bit():
    from dlkern.data import DataLoader
    from dlkern.nn.utils import clip_grad_norm_
    from dlkern.optim.lr_scheduler import CosineAnnealingLR

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5))
    y = x @ rng.standard_normal(5) + 0.1 * rng.standard_normal(64)

    def make():
        w = Parameter(np.zeros(5))
        opt = optim.AdamW([w], lr=0.05, weight_decay=0.01, amsgrad=True)
        sched = CosineAnnealingLR(opt, T_max=6, eta_min=0.001)
        loader = DataLoader(x, y, batch_size=16, shuffle=True, seed=1)
        return w, opt, sched, loader

    def epoch(w, opt, sched, loader):
        for xb, yb in loader:
            w.grad = 2 * xb.T @ (xb @ w.data - yb) / len(xb)
            clip_grad_norm_([w], 1.0)
            opt.step()
        sched.step()

    w, opt, sched, loader = make()
    for _ in range(6):
        epoch(w, opt, sched, loader)
    final = w.data.copy()

    w, opt, sched, loader = make()
    for _ in range(3):
        epoch(w, opt, sched, loader)
    checkpoint = (w.data.copy(), opt.state_dict(), sched.state_dict(), loader.state_dict())
    w2, opt2, sched2, loader2 = make()
    w2.data[...] = checkpoint[0]
    opt2.load_state_dict(checkpoint[1])
    sched2.load_state_dict(checkpoint[2])
    loader2.load_state_dict(checkpoint[3])
    for _ in range(3):
        epoch(w2, opt2, sched2, loader2)
    np.testing.assert_array_equal(w2.data, final)
    assert np.mean((x @ final - y) ** 2) < np.mean(y ** 2) / 10  # it did learn


try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # hypothesis is a test extra
    given = None

if given is not None:
    _HYPER = st.one_of(
        st.tuples(st.just("SGD"), st.fixed_dictionaries({
            "lr": st.floats(0.0, 1.0), "momentum": st.sampled_from([0.0, 0.5, 0.99]),
            "dampening": st.sampled_from([0.0, 0.3]), "weight_decay": st.floats(0.0, 0.5),
            "maximize": st.booleans()})),
        st.tuples(st.just("Adagrad"), st.fixed_dictionaries({
            "lr": st.floats(1e-4, 1.0), "lr_decay": st.floats(0.0, 0.5),
            "weight_decay": st.floats(0.0, 0.5), "initial_accumulator_value": st.floats(0.0, 1.0),
            "eps": st.floats(1e-10, 1e-2)})),
        st.tuples(st.just("Adadelta"), st.fixed_dictionaries({
            "lr": st.floats(1e-3, 2.0), "rho": st.floats(0.0, 1.0), "eps": st.floats(1e-8, 1e-2),
            "weight_decay": st.floats(0.0, 0.5)})),
        st.tuples(st.just("RMSprop"), st.fixed_dictionaries({
            "lr": st.floats(1e-4, 0.1), "alpha": st.floats(0.5, 0.999),
            "eps": st.floats(1e-8, 1e-2), "momentum": st.sampled_from([0.0, 0.9]),
            "centered": st.booleans(), "weight_decay": st.floats(0.0, 0.5)})),
        st.tuples(st.sampled_from(["Adam", "AdamW"]), st.fixed_dictionaries({
            "lr": st.floats(1e-4, 0.1), "betas": st.tuples(st.floats(0.0, 0.99),
                                                            st.floats(0.0, 0.9999)),
            "eps": st.floats(1e-10, 1e-3), "weight_decay": st.floats(0.0, 0.5),
            "amsgrad": st.booleans(), "maximize": st.booleans()})),
    )

    @settings(max_examples=25, deadline=None)
    @given(case=_HYPER, seed=st.integers(0, 2 ** 16), steps=st.integers(1, 5))
    def test_hypothesis_hyperparameters_match_torch(case, seed, steps):
        torch = pytest.importorskip("torch")
        name, kwargs = case
        init, grads = _data(np.float64, seed=seed, steps=steps)
        expected, _ = _run_torch(torch, name, kwargs, init, grads)
        params, _ = _run_dlkern(name, kwargs, init, grads)
        for p, e in zip(params, expected):
            np.testing.assert_allclose(p.data, e, rtol=1e-11, atol=1e-13)


def _textbook_adam(name, kwargs, init, grads):
    """Adam/AdamW one parameter at a time in the plain one-temporary-per-operation
    NumPy form (the form before the fused group update): the fused step must give
    exactly these bits, so results do not drift from earlier runs or checkpoints."""
    lr, (beta1, beta2) = kwargs.get("lr", 1e-3), kwargs.get("betas", (0.9, 0.999))
    eps, amsgrad = kwargs.get("eps", 1e-8), kwargs.get("amsgrad", False)
    wd = kwargs.get("weight_decay", 1e-2 if name == "AdamW" else 0)
    params = [x.copy() for x in init]
    m = [np.zeros_like(x) for x in init]
    v = [np.zeros_like(x) for x in init]
    vmax = [np.zeros_like(x) for x in init]
    steps = [0] * len(init)  # per parameter: one that sat out a step counts fewer
    for step_grads in grads:
        for i, (p, g, ea, es, vm) in enumerate(zip(params, step_grads, m, v, vmax)):
            if g is None:
                continue
            steps[i] += 1
            t = steps[i]
            g = -g if kwargs.get("maximize", False) else g
            if wd != 0:
                if name == "AdamW":
                    p *= 1 - lr * wd
                else:
                    g = g + wd * p
            w = ea.dtype.type(1 - beta1)
            if abs(w) < 0.5:
                ea += w * (g - ea)
            else:
                ea[...] = g - (g - ea) * (ea.dtype.type(1) - w)
            es *= beta2
            es += (1 - beta2) * g * g
            second = es
            if amsgrad:
                np.maximum(vm, es, out=vm)
                second = vm
            denom = np.sqrt(second) / (1 - beta2 ** t) ** 0.5
            denom += eps
            p += (-(lr / (1 - beta1 ** t))) * ea / denom
    return params, m, v


ADAM_CASES = [c for c in CASES if c[0] in ("Adam", "AdamW")] + [
    ("Adam", dict(betas=(0.3, 0.9)))]  # 1 - beta1 >= 0.5: lerp's other branch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ADAM_CASES, ids=_case_id)
def test_fused_adam_is_bit_identical_to_the_per_parameter_form(case, dtype):
    name, kwargs = case
    init, grads = _data(dtype, seed=3, steps=7)
    params, opt = _run_dlkern(name, kwargs, init, grads)
    expected, m, v = _textbook_adam(name, kwargs, init, grads)
    assert opt.state[params[0]]["exp_avg"].base is not None  # the fused path ran
    for p, e, ea, es in zip(params, expected, m, v):
        np.testing.assert_array_equal(p.data, e)
        np.testing.assert_array_equal(opt.state[p]["exp_avg"], ea)
        np.testing.assert_array_equal(opt.state[p]["exp_avg_sq"], es)


def test_fused_adam_falls_back_when_parameters_skip_steps_or_mix_dtypes():
    """A parameter without a gradient in some steps has its own step count (bias
    correction); a float64 parameter among float32 ones cannot share a buffer. Both
    must still give the per-parameter bits; parameters regaining a gradient rejoin."""
    init, grads = _data(np.float64, seed=5, steps=8)
    for s in (2, 3, 4):
        grads[s][1] = None  # parameter 1 sits out three steps
    params = [Parameter(x.copy()) for x in init]
    opt = optim.Adam(params, lr=0.01)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else g.copy()
        opt.step()
    expected, _, _ = _textbook_adam("Adam", dict(lr=0.01), init, grads)
    for p, e in zip(params, expected):
        np.testing.assert_array_equal(p.data, e)
    assert [opt.state[p]["step"] for p in params] == [8.0, 5.0, 8.0]

    mixed = [init[0].astype(np.float32), init[1], init[2].astype(np.float32)]
    params = [Parameter(x.copy()) for x in mixed]
    opt = optim.Adam(params, lr=0.01)
    for step_grads in grads[:2]:
        for p, g in zip(params, step_grads):
            p.grad = g.astype(p.data.dtype)
        opt.step()
    expected, _, _ = _textbook_adam("Adam", dict(lr=0.01), mixed,
                                    [[g.astype(x.dtype) for g, x in zip(sg, mixed)]
                                     for sg in grads[:2]])
    for p, e in zip(params, expected):
        assert p.data.dtype == e.dtype
        np.testing.assert_array_equal(p.data, e)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_adam_survives_load_state_dict_and_copies(amsgrad):
    """State entries are views of a flat buffer: loading a state dict, deep-copying
    the optimizer, or changing which parameters have gradients must rebuild it, never
    update a stale buffer."""
    import copy
    init, grads = _data(np.float32, seed=7, steps=9)
    kwargs = dict(lr=0.01, amsgrad=amsgrad)
    expected, _, _ = _textbook_adam("Adam", kwargs, init, grads)
    params, opt = _run_dlkern("Adam", kwargs, init, grads[:3])
    twin_params = [Parameter(p.data.copy()) for p in params]
    twin = optim.Adam(twin_params, **kwargs)
    twin.load_state_dict(opt.state_dict())
    clone = copy.deepcopy(opt)  # a copy of the optimizer alone: its own parameters
    _run_dlkern("Adam", kwargs, None, grads[3:], params=params, opt=opt)
    _run_dlkern("Adam", kwargs, None, grads[3:], params=twin_params, opt=twin)
    for p, t, e in zip(params, twin_params, expected):
        np.testing.assert_array_equal(p.data, e)
        np.testing.assert_array_equal(t.data, e)
    clone_params = clone.param_groups[0]["params"]
    _run_dlkern("Adam", kwargs, None, grads[3:], params=clone_params, opt=clone)
    for p, e in zip(clone_params, expected):
        np.testing.assert_array_equal(p.data, e)
    # state entries of the live optimizer are slices of one buffer, updated in place
    bases = {opt.state[p]["exp_avg"].base is not None for p in params}
    assert bases == {True}
