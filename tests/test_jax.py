"""adapprox.jax: the native step as an XLA FFI custom call under jax.jit. References: optax's own
adamw (same update, float32 tolerance), and the torch front fed the same gradients (same
kernels: the same bits)."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402

import adapprox.jax as aj  # noqa: E402
import adapprox.torch as at  # noqa: E402


def mlp_params(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    return {"w1": jax.random.normal(k1, (12, 32)) * 0.3, "b1": jnp.zeros(32),
            "w2": jax.random.normal(k2, (32, 4)) * 0.3, "x": jax.random.normal(k3, (64, 12))}


def loss_fn(params, x, y):
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"] - y) ** 2) + 1e-3 * jnp.sum(params["x"] ** 2)


def data(seed=1):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.normal(k1, (64, 12)), jax.random.normal(k2, (64, 4))


def test_adamw_matches_optax_adamw_under_jit():
    params, (x, y) = mlp_params(), data()
    ours, theirs = aj.adamw(learning_rate=3e-3, weight_decay=0.05), optax.adamw(3e-3, weight_decay=0.05)
    s_ours, s_theirs = ours.init(params), theirs.init(params)
    p_ours = p_theirs = params

    @jax.jit
    def step_ours(p, s):
        g = jax.grad(loss_fn)(p, x, y)
        u, s = ours.update(g, s, p)
        return optax.apply_updates(p, u), s

    @jax.jit
    def step_theirs(p, s):
        g = jax.grad(loss_fn)(p, x, y)
        u, s = theirs.update(g, s, p)
        return optax.apply_updates(p, u), s

    for _ in range(25):
        p_ours, s_ours = step_ours(p_ours, s_ours)
        p_theirs, s_theirs = step_theirs(p_theirs, s_theirs)
    moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(p_ours),
                                                                  jax.tree_util.tree_leaves(params)))
    assert moved > 0.05  # the parameters did travel
    for a, b in zip(jax.tree_util.tree_leaves(p_ours), jax.tree_util.tree_leaves(p_theirs)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
    assert int(s_ours.count) == 25


def torch_trajectory(make, params, grads_per_step, lrs=None):
    """The torch front on the same leaves (tree_leaves order) and the same gradients."""
    leaves = [torch.nn.Parameter(torch.tensor(np.asarray(p))) for p in jax.tree_util.tree_leaves(params)]
    opt = make(leaves)
    for t, grads in enumerate(grads_per_step):
        for p, g in zip(leaves, grads):
            p.grad = torch.tensor(np.asarray(g))
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[t]
        opt.step()
    return [p.detach().numpy() for p in leaves], opt


def jax_trajectory(tx, params, x, y, steps):
    """jit-compiled training with tx.step; the gradients it used, per step."""
    state = tx.init(params)

    @jax.jit
    def train_step(p, s):
        g = jax.grad(loss_fn)(p, x, y)
        p, s = tx.step(p, g, s)
        return p, s, g

    used = []
    for _ in range(steps):
        params, state, g = train_step(params, state)
        used.append([np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(g)])
    return params, state, used


def test_adapprox_jit_training_follows_the_torch_front():
    params, (x, y) = mlp_params(2), data(3)
    tx = aj.adapprox(learning_rate=1e-2, rank=1, max_rank=6, tol=0.05)
    p_jax, state, grads = jax_trajectory(tx, params, x, y, 15)
    p_torch, opt = torch_trajectory(lambda ps: at.Adapprox(ps, lr=1e-2, rank=1, max_rank=6, tol=0.05), params, grads)
    for a, b in zip(jax.tree_util.tree_leaves(p_jax), p_torch):
        np.testing.assert_array_equal(np.asarray(a), b)  # same kernels, inputs and keys: the same bits
    # The factors at capacity hold the torch front's factors in their first k columns, zeros after.
    leaves = jax.tree_util.tree_leaves(params)
    torch_params = [p for g in opt.param_groups for p in g["params"]]
    for i, leaf in enumerate(leaves):
        st = state.buffers[i]
        if "factor_q" not in st:
            continue
        k = int(st["factor_q_cols"])
        ref = opt.state[torch_params[i]]
        assert st["factor_q"].shape[1] == aj.rank_capacity("adapprox", {"max_rank": 6, "min_rank": 1}, leaf.shape)
        assert k == ref["factor_q"].shape[1] >= 1
        np.testing.assert_array_equal(np.asarray(st["factor_q"])[:, :k], ref["factor_q"].numpy())
        np.testing.assert_array_equal(np.asarray(st["factor_u"])[:, :k], ref["factor_u"].numpy())
        assert not np.asarray(st["factor_q"])[:, k:].any()
    # optax's update path gives the same trajectory to float32 rounding (p + (p_new - p)).
    tx2 = aj.adapprox(learning_rate=1e-2, rank=1, max_rank=6, tol=0.05)
    s2, p2 = tx2.init(params), params
    upd = jax.jit(tx2.update)
    for g in grads[:5]:
        u, s2 = upd(jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), [jnp.asarray(a) for a in g]),
                    s2, p2)
        p2 = optax.apply_updates(p2, u)
    p5, _ = torch_trajectory(lambda ps: at.Adapprox(ps, lr=1e-2, rank=1, max_rank=6, tol=0.05), params, grads[:5])
    for a, b in zip(jax.tree_util.tree_leaves(p2), p5):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6)


FAMILY = [
    (lambda: aj.adam(learning_rate=1e-2, weight_decay=0.01, amsgrad=1),
     lambda ps: at.Adam(ps, lr=1e-2, weight_decay=0.01, amsgrad=True)),
    (lambda: aj.nadam(learning_rate=1e-2, decoupled_weight_decay=1, weight_decay=0.01),
     lambda ps: at.NAdam(ps, lr=1e-2, decoupled_weight_decay=True, weight_decay=0.01)),
    (lambda: aj.rmsprop(learning_rate=1e-2, centered=1, momentum=0.9),
     lambda ps: at.RMSprop(ps, lr=1e-2, centered=True, momentum=0.9)),
    (lambda: aj.adagrad(learning_rate=1e-1, lr_decay=0.01, initial_accumulator_value=0.1),
     lambda ps: at.Adagrad(ps, lr=1e-1, lr_decay=0.01, initial_accumulator_value=0.1)),
    (lambda: aj.sgd(learning_rate=1e-2, momentum=0.9, nesterov=1),
     lambda ps: at.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True)),
    (lambda: aj.signsgd(learning_rate=1e-3, momentum=0.9), lambda ps: at.SignSGD(ps, lr=1e-3, momentum=0.9)),
    (lambda: aj.adafactor(learning_rate=1e-2), lambda ps: at.Adafactor(ps, lr=1e-2)),
    (lambda: aj.adafactor(mode=1, beta1=0.9, learning_rate=1e-2),
     lambda ps: at.Adafactor(ps, mode="paper", beta1=0.9, lr=None)),
]


@pytest.mark.parametrize("ours, theirs", FAMILY, ids=["adam-amsgrad", "nadamw", "rmsprop-centered", "adagrad",
                                                       "sgd-nesterov", "signsgd", "adafactor-torch", "adafactor-paper"])
def test_family_under_jit_steps_exactly_as_the_torch_front(ours, theirs):
    params, (x, y) = mlp_params(4), data(5)
    p_jax, _, grads = jax_trajectory(ours(), params, x, y, 6)
    p_torch, _ = torch_trajectory(theirs, params, grads)
    for a, b in zip(jax.tree_util.tree_leaves(p_jax), p_torch):
        np.testing.assert_array_equal(np.asarray(a), b)


def test_a_schedule_gives_each_step_its_learning_rate():
    params, (x, y) = mlp_params(6), data(7)
    # Values exact in float32 whether JAX computes them inside the jitted step or here.
    schedule = optax.piecewise_constant_schedule(1e-2, {2: 0.5, 4: 0.25})
    p_jax, _, grads = jax_trajectory(aj.adam(learning_rate=schedule), params, x, y, 5)
    lrs = [float(schedule(t)) for t in range(5)]
    p_torch, _ = torch_trajectory(lambda ps: at.Adam(ps, lr=1e-2), params, grads, lrs=lrs)
    for a, b in zip(jax.tree_util.tree_leaves(p_jax), p_torch):
        np.testing.assert_array_equal(np.asarray(a), b)


def test_donated_buffers_are_stepped_in_place():
    params = {"w": jnp.ones((64, 48)), "b": jnp.ones(48)}
    grads = {"w": jnp.full((64, 48), 0.5), "b": jnp.full(48, 0.5)}
    tx = aj.adam(learning_rate=1e-2)
    state = tx.init(params)
    step = jax.jit(tx.step, donate_argnums=(0, 2))
    # The custom call declares every result an alias of its operand (2 parameters + 3 state
    # buffers each: step, exp_avg, exp_avg_sq), so XLA writes it in place, with no copy.
    compiled = step.lower(params, grads, state).compile().as_text()
    call = next(line for line in compiled.splitlines() if 'custom_call_target="adapprox_step"' in line)
    aliasing = call.split("output_to_operand_aliasing={", 1)[1].split("}, api_version", 1)[0]
    assert aliasing.count(": (") == 2 * 4, call
    # No array is copied: only the int32 step count, which the call and count + 1 both read.
    copies = [line for line in compiled.splitlines() if " copy(" in line or "copy-start(" in line]
    assert all(" = s32[] copy(" in line for line in copies), copies
    params, state = step(params, grads, state)  # compile
    before = [a.unsafe_buffer_pointer() for a in jax.tree_util.tree_leaves((params, state.buffers))]
    params, state = step(params, grads, state)
    after = [a.unsafe_buffer_pointer() for a in jax.tree_util.tree_leaves((params, state.buffers))]
    assert before == after  # results aliased to the donated operands: no copy


def test_memory_report_counts_factors_at_capacity():
    params = {"w": jnp.ones((256, 128)), "b": jnp.ones(128)}
    tx = aj.adapprox(beta1=0.0, max_rank=8)
    state = tx.init(params)
    report = aj.memory_report(state, params)
    # b: a dense second moment (1-D); w: Q (256 x 8) and U (128 x 8) at capacity, no first moment.
    assert report["params"][0]["state_bytes"] == 128 * 4
    assert report["params"][1] == dict(shape=(256, 128), state_bytes=(256 + 128) * 8 * 4, rank=0, capacity=8,
                                       buffers=dict(factor_q=256 * 8 * 4, factor_u=128 * 8 * 4))
    assert report["total_bytes"] == 128 * 4 + (256 + 128) * 8 * 4
    assert report["adamw_bytes"] == 2 * (256 * 128 + 128) * 4
    # The default capacity: max(1, min(m, n) // 4) columns.
    assert aj.adapprox().init(params).buffers[1]["factor_q"].shape == (256, 32)


def test_bad_input_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="beta2"):
        aj.adam(beta2=1.5)
    with pytest.raises(TypeError, match="learning_rate"):
        aj.make_transformation("adam", 1e-3, {"lr": 1e-3})
    params = {"w": jnp.ones((4, 3))}
    tx = aj.adam()
    state = tx.init(params)
    with pytest.raises(ValueError, match="needs params"):
        tx.update(params, state)
    # A state initialised for a smaller rank capacity than the step may choose: refused up front.
    small = aj.adapprox(max_rank=1)
    big = aj.adapprox(max_rank=3)
    wide = {"w": jnp.ones((12, 8))}
    with pytest.raises(Exception, match=r"params\[0\]: state 'factor_q' holds 1 columns, but the step may choose up to 3"):
        jax.block_until_ready(jax.jit(big.step)(wide, wide, small.init(wide)))
    bad = {"w": jnp.ones((4, 3), jnp.bfloat16)}  # a gradient of another dtype than its parameter
    with pytest.raises(Exception, match=r"adapprox: .*grads\[0\]|adapprox: .*dtype"):
        jax.block_until_ready(jax.jit(tx.step)(params, bad, state))
