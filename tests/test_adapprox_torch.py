"""adapprox.torch.Adapprox honours the torch.optim contract."""
import copy
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import adapprox.numpy as anp  # noqa: E402
import adapprox.torch as atorch  # noqa: E402


def model_and_data(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(12, 24), torch.nn.ReLU(), torch.nn.Linear(24, 3)).to(dtype)
    x, y = torch.randn(64, 12, dtype=dtype), torch.randn(64, 3, dtype=dtype)
    return model, x, y


def train(model, opt, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def test_is_a_torch_optimizer_and_trains():
    model, x, y = model_and_data()
    opt = atorch.Adapprox(model.parameters(), lr=1e-2)
    assert isinstance(opt, torch.optim.Optimizer)
    start = torch.nn.functional.mse_loss(model(x), y).item()
    train(model, opt, x, y, 100)
    assert torch.nn.functional.mse_loss(model(x), y).item() < 0.7 * start


def test_state_dict_round_trip_is_bitwise():
    model, x, y = model_and_data()
    opt = atorch.Adapprox(model.parameters(), lr=1e-2, weight_decay=0.1, max_rank=3)
    train(model, opt, x, y, 5)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    train(model, opt, x, y, 7)
    expected = [p.detach().clone() for p in model.parameters()]

    buf.seek(0)
    saved = torch.load(buf)
    model2, _, _ = model_and_data(seed=1)
    model2.load_state_dict(saved["model"])
    opt2 = atorch.Adapprox(model2.parameters(), lr=123.0)  # hyperparameters come from the checkpoint
    opt2.load_state_dict(saved["opt"])
    assert opt2.param_groups[0]["lr"] == 1e-2
    train(model2, opt2, x, y, 7)
    for a, b in zip(expected, model2.parameters()):
        assert torch.equal(a, b)


def test_state_dict_contents():
    model, x, y = model_and_data()
    opt = atorch.Adapprox(model.parameters(), lr=1e-2)
    train(model, opt, x, y, 2)
    st = opt.state_dict()["state"]
    w = st[0]  # first Linear weight, 24 x 12
    rank = w["factor_q"].shape[1]
    assert w["step"].item() == 2 and 1 <= rank <= 3
    assert w["factor_q"].shape == (24, rank) and w["factor_u"].shape == (12, rank)
    assert w["exp_avg"].shape == (24, 12)
    assert st[1]["exp_avg_sq"].shape == (24,) and "factor_q" not in st[1]


def test_load_rejects_mismatched_state_and_changes_nothing():
    model, x, y = model_and_data()
    opt = atorch.Adapprox(model.parameters(), lr=1e-2)
    train(model, opt, x, y, 2)
    sd = opt.state_dict()
    before = opt.state_dict()
    bad = copy.deepcopy(sd)
    bad["state"][2]["factor_q"] = bad["state"][2]["factor_q"][:-1]
    opt.load_state_dict(bad)  # torch's loader checks nothing; the next step refuses it, naming the buffer
    weights = [p.detach().clone() for p in model.parameters()]
    model.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    with pytest.raises(ValueError, match=r"params\[2\].*factor_q"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))  # no group was stepped
    after = opt.state_dict()
    for k in before["state"]:
        for name, v in before["state"][k].items():
            if k == 2 and name == "factor_q":
                continue
            assert np.array_equal(np.asarray(v), np.asarray(after["state"][k][name]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_params_keep_dtype_and_fp32_state(dtype):
    model, x, y = model_and_data(dtype=dtype)
    opt = atorch.Adapprox(model.parameters(), lr=1e-2)
    start = torch.nn.functional.mse_loss(model(x).float(), y.float()).item()
    train(model, opt, x, y, 60)
    assert all(p.dtype == dtype for p in model.parameters())
    assert torch.nn.functional.mse_loss(model(x).float(), y.float()).item() < 0.8 * start
    sd = opt.state_dict()
    assert sd["state"][0]["factor_q"].dtype == torch.float32
    opt2 = atorch.Adapprox(model.parameters())
    opt2.load_state_dict(sd)
    assert opt2.state_dict()["state"][0]["factor_u"].dtype == torch.float32
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], sd["state"][0]["exp_avg"])


def test_bf16_weight_decay_is_applied_before_rounding():
    # The whole update, decay included, is computed in fp32 from the bf16 values and rounded
    # once: the result equals rounding the fp32 optimizer's result (no double rounding, no decay
    # applied separately to the bf16 tensor). There is no fp32 master copy and no stochastic rounding.
    p32 = torch.randn(40, 30)
    p16 = p32.to(torch.bfloat16)
    g = torch.randn(40, 30)
    a = atorch.Adapprox([p16.requires_grad_()], lr=1e-2, weight_decay=0.5)
    ref = p16.detach().float().clone().requires_grad_()
    b = atorch.Adapprox([ref], lr=1e-2, weight_decay=0.5)
    p16.grad, ref.grad = g.to(torch.bfloat16), g.to(torch.bfloat16).float()
    a.step()
    b.step()
    assert torch.equal(p16.detach(), ref.detach().to(torch.bfloat16))


def test_param_groups_schedulers_and_numpy_parity():
    torch.manual_seed(0)
    w1, w2 = torch.randn(10, 8, requires_grad=True), torch.randn(6, requires_grad=True)
    opt = atorch.Adapprox([{"params": [w1]}, {"params": [w2], "lr": 1e-1, "betas": (0.0, 0.99)}],
                          lr=1e-2, tol=0.0, max_rank=8, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    n1, n2 = w1.detach().numpy().copy(), w2.detach().numpy().copy()
    o1 = anp.Adapprox([n1], lr=1e-2, tol=0.0, max_rank=8, weight_decay=0.01)
    o2 = anp.Adapprox([n2], lr=1e-1, betas=(0.0, 0.99), weight_decay=0.01)
    rng = np.random.default_rng(0)
    for t in range(6):
        g1, g2 = rng.standard_normal((10, 8)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
        w1.grad, w2.grad = torch.from_numpy(g1), torch.from_numpy(g2)
        opt.step()
        o1.step([g1])
        o2.step([g2])
        sched.step()
        o1.lr, o2.lr = opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 / 8)
    assert np.allclose(w1.detach().numpy(), n1, rtol=1e-5, atol=1e-6)  # exact rank: seed-independent
    assert np.array_equal(w2.detach().numpy(), n2)  # 1-D: no randomness at all
    assert opt.state[w1]["step"].item() == 6


def test_closure_maximize_and_none_grads():
    torch.manual_seed(0)
    a, b = torch.randn(5, 4, requires_grad=True), torch.randn(3, requires_grad=True)
    opt = atorch.Adapprox([a, b], lr=1e-2, maximize=True)
    b_before = b.detach().clone()

    def closure():
        opt.zero_grad()
        loss = (a ** 2).sum()
        loss.backward()
        return loss

    l0 = opt.step(closure)
    l1 = (a ** 2).sum().item()
    assert l1 > l0.item()  # maximize climbs
    assert b.grad is None and torch.equal(b, b_before) and b not in opt.state


def test_memory_report_counts_exact_bytes():
    w, bias = torch.zeros(64, 32, requires_grad=True), torch.zeros(32, requires_grad=True)
    opt = atorch.Adapprox([w, bias], rank=3, min_rank=3, max_rank=3)
    w.grad, bias.grad = torch.randn(64, 32), torch.randn(32)
    rep0 = opt.memory_report()
    assert rep0["total_bytes"] == 0 and rep0["adamw_bytes"] == 2 * 4 * (64 * 32 + 32)
    opt.step()
    rep = opt.memory_report()
    # W: first moment 64x32 + Q 64x3 + U 32x3; bias: first moment + dense second moment
    assert rep["total_bytes"] == 4 * (64 * 32 + (64 + 32) * 3) + 4 * 2 * 32
    assert rep["params"][0] == dict(shape=(64, 32), rank=3, factored=True, state_bytes=4 * (64 * 32 + 96 * 3),
                                    buffers=dict(exp_avg=4 * 64 * 32, factor_q=4 * 64 * 3, factor_u=4 * 32 * 3))
    assert rep["buffers"] == dict(exp_avg=4 * (64 * 32 + 32), factor_q=4 * 64 * 3, factor_u=4 * 32 * 3,
                                  exp_avg_sq=4 * 32)
    opt_b0 = atorch.Adapprox([w], betas=(0.0, 0.999), max_rank=1)
    opt_b0.step()
    assert opt_b0.memory_report()["total_bytes"] == 4 * (64 + 32)


def test_bad_hyperparameters_name_the_argument():
    p = [torch.zeros(3, requires_grad=True)]
    for kw, word in [(dict(lr=-1), "lr"), (dict(betas=(1.0, 0.9)), "beta1"), (dict(betas=(0.9, 1.5)), "beta2"),
                     (dict(eps=-1), "eps"), (dict(clip_threshold=0), "clip_threshold"),
                     (dict(weight_decay=-1), "weight_decay"), (dict(min_rank=0), "min_rank"),
                     (dict(max_rank=0), "max_rank"), (dict(tol=-1), "tol")]:
        with pytest.raises(ValueError, match=word):
            atorch.Adapprox(p, **kw)
