"""adapprox.torch keeps torch.optim's whole optimizer contract, for every optimizer.

``opt.state[p]`` holds ordinary tensors under torch's names and shapes with a 0-d float32 tensor
``step`` (where torch.optim has the same optimizer, exactly its layout); ``state_dict()``,
``load_state_dict()``, the four state_dict hook kinds, deepcopy and pickle are torch's own
machinery. Checked here for a small table of constructors of every optimizer:

* deepcopy and pickle after 3 steps continue exactly as the original;
* state access by torch's names, shapes and dtypes; elementwise state updated in place;
* the four hook kinds (register_state_dict_pre/post_hook, register_load_state_dict_pre/post_hook);
* state_dict -> load_state_dict (also through torch.save / torch.load(weights_only=True)) resumes
  bit for bit;
* torch <-> adapprox interchange in float32, float64 and bfloat16 (ours keeps float32 state for
  bf16 parameters, converted once on load);
* a channels_last Conv2d model trains with every optimizer, in place, equal to the contiguous model;
* complex parameters: torch's results (view_as_real semantics) for the elementwise optimizers, a
  clear refusal that changes nothing for the others;
* loading follows torch: param_groups missing a key get the default; a missing, mis-shaped or
  wrong-kind state buffer is refused naming the buffer, never zero-filled;
* state_dicts of the previous release (python int ``step``, float ``mu_product``, Adapprox
  ``rank``) load and continue exactly.
"""
import copy
import io
import pickle
import re
from dataclasses import dataclass, field

import pytest
import torch

import adapprox.torch as at

F32, F64, BF16, F16 = torch.float32, torch.float64, torch.bfloat16, torch.float16
CL = torch.channels_last

# ---------------------------------------------------------------------------------------------
# The table of constructors


def _elementwise(*names):
    return lambda shape: set(names)


def _adafactor_keys(beta1=False):
    def keys(shape):
        k = {"step", "row_var", "col_var"} if len(shape) >= 2 else {"step", "variance"}
        return k | ({"exp_avg"} if beta1 else set())
    return keys


def _adapprox_keys(b1):
    def keys(shape):
        k = {"step", "factor_q", "factor_u"} if len(shape) >= 2 else {"step", "exp_avg_sq"}
        return k | ({"exp_avg"} if b1 else set())
    return keys


@dataclass
class Case:
    id: str
    cls: str                        # adapprox.torch.<cls>
    kwargs: dict                    # shared with torch.optim.<cls> where torch has it
    keys: object                    # param shape -> the state keys after a step
    torch: bool = False             # torch.optim.<cls> takes the same kwargs and state
    kind: str = "elementwise"       # elementwise | adafactor | adapprox | gram
    ours_only: dict = field(default_factory=dict)  # kwargs only ours takes
    drop: str = ""                  # a buffer whose absence must be refused ("" = none)

    def make(self, params):
        return getattr(at, self.cls)(params, **self.kwargs, **self.ours_only)

    def make_torch(self, params):
        return getattr(torch.optim, self.cls)(params, **self.kwargs)

    @property
    def lr(self):
        return self.kwargs["lr"]


CASES = [
    Case("Adam", "Adam", dict(lr=1e-2, weight_decay=0.1), _elementwise("step", "exp_avg", "exp_avg_sq"), True,
         drop="exp_avg_sq"),
    Case("Adam-amsgrad", "Adam", dict(lr=1e-2, amsgrad=True),
         _elementwise("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"), True, drop="max_exp_avg_sq"),
    Case("AdamW", "AdamW", dict(lr=1e-2, weight_decay=0.1), _elementwise("step", "exp_avg", "exp_avg_sq"), True,
         drop="exp_avg_sq"),
    Case("NAdam", "NAdam", dict(lr=1e-2, weight_decay=0.1),
         _elementwise("step", "mu_product", "exp_avg", "exp_avg_sq"), True, drop="exp_avg_sq"),
    Case("RMSprop", "RMSprop", dict(lr=1e-2), _elementwise("step", "square_avg"), True, drop="square_avg"),
    Case("RMSprop-centered-momentum", "RMSprop", dict(lr=1e-2, centered=True, momentum=0.5, weight_decay=0.1),
         _elementwise("step", "square_avg", "grad_avg", "momentum_buffer"), True, drop="grad_avg"),
    Case("Adagrad", "Adagrad", dict(lr=1e-1, weight_decay=0.1, initial_accumulator_value=0.1),
         _elementwise("step", "sum"), True, drop="sum"),
    # torch's SGD: no step; a missing momentum_buffer means "first step" there, so nothing to drop
    Case("SGD-momentum", "SGD", dict(lr=1e-2, momentum=0.9, weight_decay=0.1), _elementwise("momentum_buffer"), True),
    Case("SignSGD-momentum", "SignSGD", dict(lr=1e-2, momentum=0.9, weight_decay=0.1),
         _elementwise("step", "momentum_buffer"), drop="momentum_buffer"),
    Case("Adafactor-torch", "Adafactor", dict(lr=1e-2, weight_decay=0.1), _adafactor_keys(), True,
         kind="adafactor", drop="col_var"),
    Case("Adafactor-paper", "Adafactor", dict(lr=1e-2, weight_decay=0.1), _adafactor_keys(beta1=True),
         kind="adafactor", ours_only=dict(mode="paper", beta1=0.9), drop="col_var"),
    Case("Adapprox-b1=0.9", "Adapprox", dict(lr=1e-2, weight_decay=0.1, max_rank=3), _adapprox_keys(True),
         kind="adapprox", drop="factor_u"),
    Case("Adapprox-b1=0", "Adapprox", dict(lr=1e-2, betas=(0.0, 0.999), max_rank=3), _adapprox_keys(False),
         kind="adapprox", drop="factor_u"),
    Case("AdaGram", "AdaGram", dict(lr=1e-1, rank=2, weight_decay=0.1), _elementwise("step", "factor_p", "factor_q"),
         kind="gram", drop="factor_p"),
    Case("FullMatrixAdagrad", "FullMatrixAdagrad", dict(lr=1e-1, weight_decay=0.1), _elementwise("step", "sum"),
         kind="gram", drop="sum"),
]
BY_ID = {c.id: c for c in CASES}
TORCH_CASES = [c for c in CASES if c.torch]
# torch.optim.SGD without momentum keeps no state at all; it takes part where torch is compared
SGD_PLAIN = Case("SGD", "SGD", dict(lr=1e-2, weight_decay=0.1), _elementwise(), True)
INTERCHANGE_CASES = TORCH_CASES + [SGD_PLAIN]
ELEMENTWISE = [c for c in CASES if c.kind == "elementwise"]


def cases(selection):
    return pytest.mark.parametrize("case", selection, ids=[c.id for c in selection])


# ---------------------------------------------------------------------------------------------
# Parameters, gradients, training

SHAPES = [(6, 5), (5,), (2, 3, 4), (), (3,)]
FROZEN = 4  # never gets a gradient


def make_params(dtype=F32, seed=0, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=F64).to(dtype).requires_grad_() for s in shapes]


def clone_params(params):
    return [p.detach().clone().requires_grad_() for p in params]


def groups(params, lr):
    """Two groups, the second with its own lr (exercises per-group hyperparameters and the
    index mapping of state_dicts)."""
    return [{"params": params[:2] + params[3:4]}, {"params": [params[2], params[4]], "lr": lr / 2}]


def opt_params(opt):
    return [p for g in opt.param_groups for p in g["params"]]


def same_positions(opt, params, other):
    """`other`'s parameters (a copy of `opt`) in the order of `params`."""
    ids = [id(p) for p in opt_params(opt)]
    theirs = opt_params(other)
    return [theirs[ids.index(id(p))] for p in params]


def gradient(t, i, p):
    gen = torch.Generator().manual_seed(7919 * t + i)
    g = torch.randn(p.shape, generator=gen, dtype=F64)
    if p.is_complex():
        g = torch.complex(g, torch.randn(p.shape, generator=gen, dtype=F64))
    return g.to(p.dtype)


def set_grads(params, t, frozen=FROZEN):
    """Gradients keyed by the position in `params` (the original list order, not group order)."""
    for i, p in enumerate(params):
        p.grad = None if i == frozen else gradient(t, i, p)


def train(opt, params, t0, t1):
    for t in range(t0, t1):
        set_grads(params, t)
        opt.step()


def trained(case, steps=3, dtype=F32, torch_impl=False):
    params = make_params(dtype)
    opt = (case.make_torch if torch_impl else case.make)(groups(params, case.lr))
    train(opt, params, 0, steps)
    return params, opt


def state_of(opt, params):
    """[(index, opt.state[p]) for params with state], without creating entries."""
    return [(i, opt.state[p]) for i, p in enumerate(params) if p in opt.state and len(opt.state[p]) > 0]


def assert_params_equal(a, b, what=""):
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        same = torch.equal(x.detach(), y.detach())
        assert same, f"{what} param {i} {tuple(x.shape)}: not bitwise equal"


def assert_states_equal(opt_a, params_a, opt_b, params_b):
    sa, sb = state_of(opt_a, params_a), state_of(opt_b, params_b)
    assert [i for i, _ in sa] == [i for i, _ in sb]
    for (i, a), (_, b) in zip(sa, sb):
        assert set(a) == set(b), f"param {i}: {sorted(a)} vs {sorted(b)}"
        for k in a:
            if isinstance(a[k], torch.Tensor):
                same = a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k])
                assert same, f"param {i} {k!r} differs"
            else:
                assert a[k] == b[k], f"param {i} {k!r}: {a[k]!r} vs {b[k]!r}"


def state_dtype(case, param_dtype):
    if case.kind == "adapprox":
        return F32
    if case.kind == "gram":
        return F64
    if param_dtype in (BF16, F16):
        return F32
    return param_dtype


def close(ours, ref, dtype):
    tol = {F64: dict(rtol=1e-10, atol=1e-10), F32: dict(rtol=1e-5, atol=1e-6),
           BF16: dict(rtol=5e-2, atol=5e-2)}[dtype]
    for i, (a, b) in enumerate(zip(ours, ref)):
        torch.testing.assert_close(a.detach().double(), b.detach().double(), **tol,
                                   msg=lambda m: f"param {i} {tuple(a.shape)}: {m}")


# ---------------------------------------------------------------------------------------------
# deepcopy, pickle


@cases(CASES)
def test_deepcopy_continues_identically(case):
    params, opt = trained(case)
    dup = copy.deepcopy(opt)
    by_position = same_positions(opt, params, dup)
    assert all(a is not b for a, b in zip(params, by_position))
    assert_params_equal(params, by_position)
    assert_states_equal(opt, params, dup, by_position)
    train(opt, params, 3, 6)           # the copy's state must not move with the original's
    train(dup, by_position, 3, 6)
    assert_params_equal(params, by_position, "after 3 more steps:")
    assert_states_equal(opt, params, dup, by_position)


@cases(CASES)
def test_pickle_round_trip_continues_identically(case):
    params, opt = trained(case)
    dup = pickle.loads(pickle.dumps(opt))
    assert type(dup) is type(opt)
    by_position = same_positions(opt, params, dup)
    assert_params_equal(params, by_position)
    assert_states_equal(opt, params, dup, by_position)
    train(opt, params, 3, 6)
    train(dup, by_position, 3, 6)
    assert_params_equal(params, by_position, "after 3 more steps:")
    assert_states_equal(opt, params, dup, by_position)


# ---------------------------------------------------------------------------------------------
# state access by torch's names


def check_state_layout(case, opt, params, steps, dtype):
    for i, p in enumerate(params):
        if i == FROZEN:
            if case.cls != "Adagrad":  # torch.optim.Adagrad creates step=0/sum in its constructor
                assert len(opt.state.get(p, {})) == 0, f"a parameter without gradient has state {sorted(opt.state[p])}"
            continue
        st = opt.state[p]
        shape = tuple(p.shape)
        assert set(st) == case.keys(shape), f"param {i} {shape}: state keys {sorted(st)}"
        sdt = state_dtype(case, dtype)
        for k, v in st.items():
            assert isinstance(v, torch.Tensor), f"param {i} {k!r} is a {type(v).__name__}, not a tensor"
            assert v.device == p.device
            if k == "step":
                assert v.shape == () and v.dtype == F32, f"step: shape {tuple(v.shape)}, dtype {v.dtype}"
                assert v.item() == steps
            elif k == "mu_product":
                assert v.shape == () and v.dtype == F32  # torch's: a scalar tensor of the default dtype
            elif case.kind == "elementwise":
                assert v.shape == p.shape and v.dtype == sdt, f"{k}: {tuple(v.shape)} {v.dtype}"
                assert v.stride() == p.stride()
            elif case.kind == "adafactor":
                expect = {"row_var": shape[:-1] + (1,), "col_var": shape[:-2] + (1, shape[-1]) if len(shape) >= 2 else None,
                          "variance": shape, "exp_avg": shape}[k]
                assert tuple(v.shape) == expect and v.dtype == sdt, f"{k}: {tuple(v.shape)} {v.dtype}"
            elif case.kind == "adapprox":
                assert v.dtype == F32, f"{k}: {v.dtype}"
                if k in ("factor_q", "factor_u"):
                    rows = shape[0]
                    cols = p.numel() // rows
                    k_q, k_u = st["factor_q"].shape[1], st["factor_u"].shape[1]
                    assert k_q == k_u and 1 <= k_q <= 3
                    assert tuple(st["factor_q"].shape) == (rows, k_q) and tuple(st["factor_u"].shape) == (cols, k_u)
                else:
                    assert v.shape == p.shape, f"{k}: {tuple(v.shape)}"
            else:  # gram
                n = p.numel()
                assert v.dtype == F64, f"{k}: {v.dtype}"
                if k == "sum":
                    assert tuple(v.shape) == (n, n)
                else:
                    kp, kq = st["factor_p"].shape[1], st["factor_q"].shape[1]
                    assert kp == kq and 1 <= kp <= min(2, n)
                    assert tuple(st["factor_p"].shape) == (n, kp) and tuple(st["factor_q"].shape) == (n, kq)


@cases(CASES)
def test_state_access_by_torch_names(case):
    params, opt = trained(case, steps=3)
    check_state_layout(case, opt, params, 3, F32)


@pytest.mark.parametrize("dtype", [F64, BF16, F16], ids=["f64", "bf16", "f16"])
@cases(CASES)
def test_state_dtypes(case, dtype):
    """float64 parameters: float64 state; bf16/fp16: float32 state (Adapprox float32, the Gram
    optimizers float64, for every dtype)."""
    params, opt = trained(case, steps=2, dtype=dtype)
    check_state_layout(case, opt, params, 2, dtype)
    assert all(p.dtype == dtype for p in params)


@cases([c for c in CASES if c.kind in ("elementwise", "adafactor")] + [SGD_PLAIN])
def test_state_tensors_are_stepped_in_place(case):
    """As in torch, a reference to a state buffer sees the next step (same tensor, same storage)."""
    params, opt = trained(case, steps=2)
    held = {(i, k): (v, v.data_ptr(), v.clone()) for i, st in state_of(opt, params) for k, v in st.items()
            if i != FROZEN}  # (torch's Adagrad holds state for it, never stepped)
    train(opt, params, 2, 3)
    for (i, k), (v, ptr, old) in held.items():
        assert opt.state[params[i]][k] is v, f"param {i} {k!r} was replaced"
        assert v.data_ptr() == ptr
        assert not torch.equal(v, old), f"param {i} {k!r} did not change"


def test_sgd_without_momentum_keeps_no_state():
    params, opt = trained(SGD_PLAIN, steps=3)
    assert opt.state_dict()["state"] == {}
    assert all(len(opt.state.get(p, {})) == 0 for p in params)


def test_adapprox_rank_adapts_in_state():
    """factor_q/factor_u change shape with the rank, and the state_dict carries them as they are."""
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(40, 30, generator=gen).requires_grad_()
    opt = at.Adapprox([w], lr=1e-2, rank=1, max_rank=8, tol=1e-3)
    ranks = set()
    for t in range(6):  # rank-1 gradients first (rank 1 suffices), then full-rank ones (it grows)
        w.grad = (torch.outer(torch.randn(40, generator=gen), torch.randn(30, generator=gen)) if t < 3
                  else torch.randn(40, 30, generator=gen))
        opt.step()
        q, u = opt.state[w]["factor_q"], opt.state[w]["factor_u"]
        assert q.shape[0] == 40 and u.shape[0] == 30 and q.shape[1] == u.shape[1]
        ranks.add(q.shape[1])
    assert len(ranks) > 1, f"rank never changed: {ranks}"
    sd = opt.state_dict()
    assert torch.equal(sd["state"][0]["factor_q"], opt.state[w]["factor_q"])


# ---------------------------------------------------------------------------------------------
# state_dict hooks (as torch's test_optim.py uses them)


@cases(CASES)
def test_state_dict_pre_hook_adding_state_key(case):
    params, opt = trained(case)
    calls = []

    def pre(optimizer):
        calls.append(optimizer)
        optimizer.state["test"] = 1

    opt.register_state_dict_pre_hook(pre)
    sd = opt.state_dict()
    assert calls == [opt]
    assert sd["state"]["test"] == 1
    del opt.state["test"]


@cases(CASES)
def test_state_dict_post_hook(case):
    params, opt = trained(case)
    calls = []

    def pre(optimizer):
        optimizer.state["test"] = 1

    def post(optimizer, state_dict):
        calls.append((optimizer, sorted(state_dict)))
        if "test" in state_dict["state"]:
            state_dict["state"].pop("test")
            state_dict["ran_state_dict_pre_hook"] = True
        else:
            state_dict["ran_state_dict_pre_hook"] = False
        return state_dict

    opt.register_state_dict_pre_hook(pre)
    opt.register_state_dict_post_hook(post)
    sd = opt.state_dict()
    assert calls == [(opt, ["param_groups", "state"])]
    assert sd["ran_state_dict_pre_hook"] is True
    assert "test" not in sd["state"]
    del opt.state["test"]

    # a post hook that returns a new dict replaces the result
    opt2 = case.make(groups(clone_params(params), case.lr))
    opt2.register_state_dict_post_hook(lambda o, s: {"replaced": True})
    assert opt2.state_dict() == {"replaced": True}


@cases(CASES)
def test_load_state_dict_hooks(case):
    params, opt = trained(case)
    sd = copy.deepcopy(opt.state_dict())
    fresh_params = clone_params(params)
    fresh = case.make(groups(fresh_params, case.lr))
    calls = []

    def pre1(optimizer, state_dict):
        calls.append(("pre1", optimizer, sorted(state_dict)))
        state_dict["param_groups"][0]["lr"] = 0.002

    def pre2(optimizer, state_dict):
        calls.append(("pre2", optimizer, state_dict["param_groups"][0]["lr"]))
        mine = copy.deepcopy(state_dict)
        mine["param_groups"][0]["lr"] = 0.003
        return mine

    def post(optimizer):
        calls.append(("post", optimizer, optimizer.param_groups[0]["lr"]))
        optimizer.state["ran_load_state_dict_pre_hook2"] = optimizer.param_groups[0]["lr"] == 0.003
        optimizer.state["ran_load_state_dict_post_hook"] = True

    fresh.register_load_state_dict_pre_hook(pre1)
    fresh.register_load_state_dict_pre_hook(pre2)
    fresh.register_load_state_dict_post_hook(post)
    fresh.load_state_dict(sd)
    assert calls == [("pre1", fresh, ["param_groups", "state"]), ("pre2", fresh, 0.002), ("post", fresh, 0.003)]
    assert fresh.state["ran_load_state_dict_pre_hook2"] is True
    assert fresh.state["ran_load_state_dict_post_hook"] is True
    assert fresh.param_groups[1]["lr"] == case.lr / 2
    for key in ("ran_load_state_dict_pre_hook2", "ran_load_state_dict_post_hook"):
        del fresh.state[key]
    # the loaded state is there and usable: one more step with the hooks' lr runs
    set_grads(fresh_params, 3)
    fresh.step()
    assert all(torch.isfinite(p).all() for p in fresh_params)


# ---------------------------------------------------------------------------------------------
# state_dict round trips


@cases(CASES)
def test_state_dict_resumes_bit_for_bit(case):
    params, opt = trained(case)
    sd = copy.deepcopy(opt.state_dict())
    resumed_params = clone_params(params)
    resumed = case.make(groups(resumed_params, case.lr))
    resumed.load_state_dict(sd)
    assert_states_equal(opt, params, resumed, resumed_params)
    train(opt, params, 3, 6)
    train(resumed, resumed_params, 3, 6)
    assert_params_equal(params, resumed_params, "resumed:")
    assert_states_equal(opt, params, resumed, resumed_params)


@cases(CASES)
def test_state_dict_through_torch_save_weights_only(case):
    """torch.load(weights_only=True), torch's default, accepts the state_dict: tensors and plain
    Python values only."""
    params, opt = trained(case)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)
    resumed_params = clone_params(params)
    resumed = case.make(groups(resumed_params, case.lr))
    resumed.load_state_dict(sd)
    train(opt, params, 3, 5)
    train(resumed, resumed_params, 3, 5)
    assert_params_equal(params, resumed_params, "resumed:")


# ---------------------------------------------------------------------------------------------
# torch <-> adapprox interchange

DTYPES = pytest.mark.parametrize("dtype", [F32, F64, BF16], ids=["f32", "f64", "bf16"])


def torch_then_ours(case, dtype):
    ref_params, ref = trained(case, dtype=dtype, torch_impl=True)
    ref_sd = copy.deepcopy(ref.state_dict())
    our_params = clone_params(ref_params)
    ours = case.make(groups(our_params, case.lr))
    ours.load_state_dict(copy.deepcopy(ref_sd))
    return ref_params, ref, our_params, ours


@DTYPES
@cases(INTERCHANGE_CASES)
def test_torch_state_dict_loads_into_ours(case, dtype):
    """A torch.optim state_dict loads into ours and training continues as torch's does (float32 and
    float64 to rounding; bf16 loosely, since ours keeps float32 state where torch keeps bf16)."""
    ref_params, ref, our_params, ours = torch_then_ours(case, dtype)
    train(ref, ref_params, 3, 6)
    train(ours, our_params, 3, 6)
    close(our_params, ref_params, dtype)


@DTYPES
@cases(INTERCHANGE_CASES)
def test_torch_state_dict_loaded_layout(case, dtype):
    """The loaded state: torch's names and values, in our dtype (bf16 -> float32, converted once),
    and it stays so while training continues."""
    ref_params, ref, our_params, ours = torch_then_ours(case, dtype)
    for i, p in enumerate(our_params):
        ref_state = ref.state[ref_params[i]] if ref_params[i] in ref.state else {}
        if not ref_state or (i == FROZEN and case.cls == "Adagrad" and len(ours.state.get(p, {})) == 0):
            continue
        st = ours.state[p]
        assert set(st) == set(ref_state), f"param {i}: {sorted(st)} vs torch {sorted(ref_state)}"
        for k, v in ref_state.items():
            assert isinstance(st[k], torch.Tensor) and st[k].shape == v.shape, k
            want = F32 if k == "step" else state_dtype(case, dtype)
            # mu_product: torch keeps it in float32, but its own load_state_dict casts it to the
            # parameter's dtype like every buffer; either is torch's behaviour
            allowed = {F32, want} if k == "mu_product" else {want}
            assert st[k].dtype in allowed, f"param {i} {k!r}: {st[k].dtype}, expected {want}"
            assert torch.equal(st[k], v.to(st[k].dtype)), f"param {i} {k!r}: values changed on load"
    train(ours, our_params, 3, 6)
    for i, st in state_of(ours, our_params):
        if i == FROZEN:
            continue
        if "step" in st:
            assert st["step"].dtype == F32 and st["step"].item() == 6
        for k, v in st.items():
            if k not in ("step", "mu_product"):
                assert v.dtype == state_dtype(case, dtype) and torch.isfinite(v).all(), k


@DTYPES
@cases(INTERCHANGE_CASES)
def test_our_state_dict_loads_into_torch(case, dtype):
    our_params, ours = trained(case, dtype=dtype)
    ref_params = clone_params(our_params)
    ref = case.make_torch(groups(ref_params, case.lr))
    ref.load_state_dict(copy.deepcopy(ours.state_dict()))
    for i, p in enumerate(ref_params):
        if p in ref.state and "step" in ref.state[p]:
            assert isinstance(ref.state[p]["step"], torch.Tensor)
    train(ours, our_params, 3, 6)
    train(ref, ref_params, 3, 6)
    close(our_params, ref_params, dtype)


# ---------------------------------------------------------------------------------------------
# channels_last


def conv_model(dtype=F32):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(4, 2, 3),
                               torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3)).to(dtype)


@cases(CASES)
def test_channels_last_conv_model(case):
    """A channels_last model trains with every optimizer, stepped in place, and ends equal to the
    contiguous model given the same gradient values."""
    dense = conv_model()
    cl = copy.deepcopy(dense).to(memory_format=CL)
    weight = cl[0].weight
    assert weight.is_contiguous(memory_format=CL) and not weight.is_contiguous()
    opt_dense = case.make(list(dense.parameters()))
    opt_cl = case.make(list(cl.parameters()))
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 6, 6, generator=gen)
    y = torch.randn(2, 3, generator=gen)
    losses = []
    for t in range(5):
        for model, opt, xi in ((dense, opt_dense, x), (cl, opt_cl, x.to(memory_format=CL))):
            opt.zero_grad()
            loss = (model(xi) - y).square().mean()
            loss.backward()
        losses.append(loss.item())
        for pd, pc in zip(dense.parameters(), cl.parameters()):
            assert pc.grad.stride() == pc.stride()
            pc.grad.copy_(pd.grad)  # the same values, each in its own layout
        ptrs = [p.data_ptr() for p in cl.parameters()]
        opt_dense.step()
        opt_cl.step()
        assert [p.data_ptr() for p in cl.parameters()] == ptrs, "a parameter was replaced, not stepped in place"
        assert weight.is_contiguous(memory_format=CL)
    assert all(torch.isfinite(torch.tensor(losses)))
    for (name, pd), pc in zip(dense.named_parameters(), cl.parameters()):
        assert not torch.equal(pd, conv_model().state_dict()[name]), f"{name} did not train"
        torch.testing.assert_close(pc.detach(), pd.detach(), rtol=1e-6, atol=1e-7, msg=lambda m: f"{name}: {m}")
    if case.kind == "elementwise":
        for k, v in opt_cl.state[weight].items():
            if v.dim() > 0:
                assert v.stride() == weight.stride(), f"{k}: strides {v.stride()} vs the parameter's {weight.stride()}"


# ---------------------------------------------------------------------------------------------
# complex parameters

COMPLEX_TORCH = [c for c in TORCH_CASES if c.kind == "elementwise"]
COMPLEX_REFUSED = [c for c in CASES if c.kind != "elementwise"]
CSHAPES = [(4, 3), (5,), (3,)]


def complex_params(dtype):
    gen = torch.Generator().manual_seed(5)
    real = F64 if dtype == torch.complex128 else F32
    ps = [torch.complex(torch.randn(s, generator=gen, dtype=real), torch.randn(s, generator=gen, dtype=real))
          for s in CSHAPES[:2]]
    ps.append(torch.randn(CSHAPES[2], generator=gen, dtype=real))  # a real parameter beside them
    return [p.requires_grad_() for p in ps]


@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=["c128", "c64"])
@cases(COMPLEX_TORCH)
def test_complex_matches_torch(case, dtype):
    ref_params = complex_params(dtype)
    our_params = clone_params(ref_params)
    ref, ours = case.make_torch(ref_params), case.make(our_params)
    for t in range(10):
        set_grads(ref_params, t, frozen=None)
        set_grads(our_params, t, frozen=None)
        ref.step()
        ours.step()
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.complex128 else dict(rtol=1e-5, atol=1e-6)
    for i, (a, b) in enumerate(zip(our_params, ref_params)):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a.detach(), b.detach(), **tol, msg=lambda m: f"param {i}: {m}")
        sa, sb = ours.state[a], ref.state[b]
        assert set(sa) == set(sb)
        for k in sb:
            assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape, k
            torch.testing.assert_close(sa[k], sb[k], **tol, msg=lambda m: f"param {i} {k!r}: {m}")


def test_signsgd_complex_is_view_as_real():
    """SignSGD on a complex parameter steps its real view: the signs of the real and imaginary parts."""
    cplx = complex_params(torch.complex128)
    real = [(torch.view_as_real(p.detach()) if p.is_complex() else p.detach()).clone().requires_grad_()
            for p in cplx]
    a = at.SignSGD(cplx, lr=1e-2, momentum=0.9, weight_decay=0.1)
    b = at.SignSGD(real, lr=1e-2, momentum=0.9, weight_decay=0.1)
    for t in range(5):
        set_grads(cplx, t, frozen=None)
        for p, q in zip(cplx, real):
            q.grad = torch.view_as_real(p.grad).clone() if p.is_complex() else p.grad.clone()
        a.step()
        b.step()
    for p, q in zip(cplx, real):
        assert torch.equal(torch.view_as_real(p.detach()) if p.is_complex() else p.detach(), q.detach())


@cases(COMPLEX_REFUSED)
def test_complex_refused_clearly(case):
    gen = torch.Generator().manual_seed(2)
    real = torch.randn(4, 3, generator=gen).requires_grad_()
    cplx = torch.randn(3, 2, generator=gen, dtype=torch.complex64).requires_grad_()
    params = [real, cplx]
    before = [p.detach().clone() for p in params]
    for attempt in range(2):  # refused every time, never half-done
        opt = None
        with pytest.raises((TypeError, ValueError)) as info:
            opt = case.make(params)
            set_grads(params, attempt, frozen=None)
            opt.step()
        msg = str(info.value)
        assert re.search(r"(?i)complex", msg), msg
        assert re.search(r"(?i)param", msg), f"the parameter is not named: {msg}"
        for p, b in zip(params, before):
            assert torch.equal(p.detach(), b)
        if opt is not None:  # refused at the step, not in the constructor
            assert all(len(opt.state.get(p, {})) == 0 for p in params)
            assert opt.state_dict()["state"] == {}


# ---------------------------------------------------------------------------------------------
# loading follows torch

DROP_GROUP_KEYS = ("maximize", "foreach", "amsgrad", "differentiable", "capturable", "fused")


@cases(CASES)
def test_param_groups_missing_keys_get_defaults(case):
    params, opt = trained(case)
    sd = copy.deepcopy(opt.state_dict())
    dropped = set()
    for g in sd["param_groups"]:
        for key in DROP_GROUP_KEYS:
            if key in g and key not in case.kwargs:
                del g[key]
                dropped.add(key)
    assert "maximize" in dropped
    resumed_params = clone_params(params)
    resumed = case.make(groups(resumed_params, case.lr))
    resumed.load_state_dict(sd)
    train(opt, params, 3, 6)
    train(resumed, resumed_params, 3, 6)
    assert_params_equal(params, resumed_params, f"without {sorted(dropped)}:")


def assert_refused(case, sd, params, pattern):
    """Loading `sd` (or at the latest the next step) raises naming the buffer; the refused step
    changes no parameter (and nothing was zero-filled and stepped)."""
    fresh_params = clone_params(params)
    opt = case.make(groups(fresh_params, case.lr))
    before = [p.detach().clone() for p in fresh_params]
    try:
        opt.load_state_dict(sd)
    except Exception as e:  # noqa: BLE001 - any type, as long as the buffer is named
        assert re.search(pattern, str(e)), f"{type(e).__name__} does not name the buffer: {e}"
        return
    set_grads(fresh_params, 3)
    with pytest.raises(Exception, match=pattern):
        opt.step()
    assert_params_equal(fresh_params, before, "after a refused step:")
    with pytest.raises(Exception, match=pattern):  # still refused: nothing was filled in
        opt.step()
    assert_params_equal(fresh_params, before, "after a second refused step:")


@cases([c for c in CASES if c.drop])
def test_missing_state_buffer_refused(case):
    params, opt = trained(case)
    sd = copy.deepcopy(opt.state_dict())
    assert case.drop in sd["state"][0]
    del sd["state"][0][case.drop]
    assert_refused(case, sd, params, re.escape(case.drop))


@cases([c for c in CASES if c.drop])
def test_misshaped_state_buffer_refused(case):
    params, opt = trained(case)
    sd = copy.deepcopy(opt.state_dict())
    t = sd["state"][0][case.drop]
    sd["state"][0][case.drop] = torch.cat([t, t[:1]])  # one row too many
    assert_refused(case, sd, params, re.escape(case.drop))


WRONG_KIND = [  # (state_dict from, loaded into, a buffer the message must name)
    ("SGD-momentum", "Adam", r"exp_avg|momentum_buffer"),
    ("Adam", "RMSprop", r"square_avg|exp_avg"),
    ("Adam", "Adagrad", r"\bsum\b|exp_avg"),
    ("Adam", "SignSGD-momentum", r"momentum_buffer|exp_avg"),
    ("Adam", "Adafactor-torch", r"row_var|col_var|variance|exp_avg"),
    ("Adam", "Adapprox-b1=0.9", r"factor_q|factor_u|exp_avg_sq"),
    ("Adam", "AdaGram", r"factor_p|factor_q|exp_avg"),
    ("Adam", "FullMatrixAdagrad", r"\bsum\b|exp_avg"),
    ("Adagrad", "FullMatrixAdagrad", r"\bsum\b"),  # same name, the wrong shape
]


@pytest.mark.parametrize("source, target, pattern", WRONG_KIND, ids=[f"{s}->{t}" for s, t, _ in WRONG_KIND])
def test_wrong_kind_of_state_refused(source, target, pattern):
    params, opt = trained(BY_ID[source])
    target_case = BY_ID[target]
    sd = copy.deepcopy(opt.state_dict())
    sd["param_groups"] = copy.deepcopy(target_case.make(groups(clone_params(params), target_case.lr))
                                       .state_dict()["param_groups"])
    assert_refused(target_case, sd, params, pattern)


# ---------------------------------------------------------------------------------------------
# state_dicts of the previous release


def older_format(case, sd, steps):
    """What the previous release's state_dict() held: a python int step, NAdam's mu_product as a
    python float, Adapprox's rank, SGD's step; the same buffers."""
    old = copy.deepcopy(sd)
    for st in old["state"].values():
        if "step" in st:
            st["step"] = int(st["step"].item())
        elif case.cls == "SGD":
            st["step"] = steps
        if "mu_product" in st:
            st["mu_product"] = float(st["mu_product"].item())
        if case.kind == "adapprox":
            st["rank"] = int(st["factor_q"].shape[1]) if "factor_q" in st else 0
    return old


@cases(CASES)
def test_older_format_loads_and_continues(case):
    params, opt = trained(case)
    old = older_format(case, opt.state_dict(), 3)
    resumed_params = clone_params(params)
    resumed = case.make(groups(resumed_params, case.lr))
    resumed.load_state_dict(old)
    for i, st in state_of(resumed, resumed_params):  # converted to the new layout on load
        if i == FROZEN:  # torch's Adagrad layout: step 0 for a parameter never stepped
            continue
        assert all(isinstance(v, torch.Tensor) for v in st.values()), sorted(st)
        if "step" in st:
            assert st["step"].shape == () and st["step"].dtype == F32 and st["step"].item() == 3
        assert "rank" not in st
    train(opt, params, 3, 6)
    train(resumed, resumed_params, 3, 6)
    assert_params_equal(params, resumed_params, "from the older format:")
