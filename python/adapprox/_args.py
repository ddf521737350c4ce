"""The Args sections of the public optimizer classes, written once for both fronts.

``documented(key)`` appends ``Args:`` to a class docstring: the front's own ``params`` (and, for
torch, the compatibility flags the class takes), then the optimizer's arguments from ``ARGS``.
tests/test_docstrings.py checks that every argument of every public ``__init__`` is described.
"""
from __future__ import annotations

import inspect

_ADAM_FAMILY = {
    "lr": "learning rate (float, or a 1-element tensor in the torch front).",
    "betas": "(beta1, beta2): decay rates of the first and second moment averages.",
    "eps": "added to the denominator sqrt(v_hat) for numerical stability.",
    "weight_decay": "L2 penalty added to the gradient (decoupled, p *= 1 - lr * wd, for AdamW or "
                    "decoupled_weight_decay=True).",
    "amsgrad": "keep the running maximum of the second moment (max_exp_avg_sq) and divide by it.",
    "decoupled_weight_decay": "apply weight decay as AdamW does instead of as an L2 gradient term.",
    "maximize": "maximize the objective (the gradient is negated).",
}

ARGS: dict[str, dict[str, str]] = {
    "adam": _ADAM_FAMILY,
    "adamw": {**_ADAM_FAMILY, "weight_decay": "decoupled weight decay: p *= 1 - lr * weight_decay each step "
                                               "(default 1e-2, as torch.optim.AdamW)."},
    "nadam": {
        "lr": "learning rate.",
        "betas": "(beta1, beta2): decay rates of the first and second moment averages.",
        "eps": "added to the denominator for numerical stability.",
        "weight_decay": "L2 penalty (decoupled with decoupled_weight_decay=True).",
        "momentum_decay": "psi in the momentum schedule mu_t = beta1 (1 - 0.5 * 0.96^(t psi)).",
        "decoupled_weight_decay": "apply weight decay as AdamW does (NAdamW).",
        "maximize": "maximize the objective (the gradient is negated).",
    },
    "rmsprop": {
        "lr": "learning rate.",
        "alpha": "smoothing constant of the running average of squared gradients.",
        "eps": "added to the denominator for numerical stability.",
        "weight_decay": "L2 penalty added to the gradient.",
        "momentum": "momentum factor (0: none; > 0 keeps momentum_buffer).",
        "centered": "divide by the estimated variance sqrt(E[g^2] - E[g]^2) (keeps grad_avg).",
        "maximize": "maximize the objective (the gradient is negated).",
    },
    "adagrad": {
        "lr": "learning rate.",
        "lr_decay": "the step size at step t is lr / (1 + (t - 1) * lr_decay).",
        "weight_decay": "L2 penalty added to the gradient.",
        "initial_accumulator_value": "starting value of the sum of squared gradients (the constructor's "
                                     "value is used for every group, as torch does).",
        "eps": "added to the denominator sqrt(sum) for numerical stability.",
        "maximize": "maximize the objective (the gradient is negated).",
    },
    "sgd": {
        "lr": "learning rate.",
        "momentum": "momentum factor (0: plain SGD, no state).",
        "dampening": "dampening of the momentum's gradient term: buf = momentum * buf + (1 - dampening) g.",
        "weight_decay": "L2 penalty added to the gradient.",
        "nesterov": "use Nesterov momentum (needs momentum > 0 and dampening 0).",
        "maximize": "maximize the objective (the gradient is negated).",
    },
    "signsgd": {
        "lr": "learning rate: every coordinate moves by lr * sign(...).",
        "momentum": "Signum's momentum factor b: the sign of m = b m + (1 - b) g is taken (0: SignSGD).",
        "weight_decay": "decoupled weight decay: p -= lr * weight_decay * p.",
        "maximize": "maximize the objective (the gradient is negated).",
    },
    "adafactor": {
        "lr": "torch mode: the cap of the relative step size rho_t = min(lr, 1/sqrt(t)). Paper mode: the "
              "same cap, with None meaning 1e-2 (relative_step=False: rho_t = lr).",
        "beta2_decay": "the second-moment decay is 1 - t^beta2_decay (torch mode: lerp weight t^beta2_decay).",
        "eps": "(eps1, eps2): eps1 regularises the squared gradients (None: torch mode uses the "
               "dtype's machine epsilon, paper mode 1e-30); eps2 floors RMS(p) in the step size.",
        "d": "update clipping threshold: the update is divided by max(1, RMS(U) / d).",
        "weight_decay": "decoupled weight decay (torch mode: p *= 1 - lr * wd; paper mode: scaled by alpha_t).",
        "maximize": "maximize the objective (the gradient is negated).",
        "mode": '"torch" (torch.optim.Adafactor step for step) or "paper" (Shazeer and Stern, Algorithms 4/5).',
        "beta1": "paper mode only: first-moment decay of the scaled update (None: no first moment is kept).",
        "relative_step": "paper mode only: rho_t = min(lr, 1/sqrt(t)) if True, else rho_t = lr.",
        "scale_parameter": "paper mode only: alpha_t = max(eps2, RMS(p)) rho_t if True, else alpha_t = rho_t.",
        "decay_rate": "paper-name alias of beta2_decay.",
        "eps1": "paper-name alias of eps[0].",
        "eps2": "paper-name alias of eps[1].",
    },
    "adapprox": {
        "lr": "learning rate.",
        "betas": "(beta1, beta2): first-moment decay (0 keeps no first moment, saving a parameter-sized "
                 "buffer) and decay of the low-rank second moment.",
        "eps": "added to the denominator sqrt(V) for numerical stability.",
        "clip_threshold": "d: the normalised update is divided by max(1, RMS(Mhat) / d) (inf: no clipping).",
        "weight_decay": "decoupled weight decay: p -= lr * weight_decay * p.",
        "rank": "the rank of the factorization at the first step; later steps start from the previous rank.",
        "min_rank": "the rank never drops below this (capped at min(m, n)).",
        "max_rank": "the rank never exceeds this; None means max(1, min(m, n) // 4). It bounds the "
                    "state: factor_q and factor_u have at most max_rank columns.",
        "tol": "target relative error ||V - Q U^T||_F / ||V||_F of each refresh: AS-RSI keeps the smallest "
               "rank in [min_rank, max_rank] whose error (from the sketch's singular values) is at most "
               "tol, and doubles its sketch while no rank up to max_rank reaches it. Smaller tol: higher "
               "rank, more memory and time, a closer second moment.",
        "oversample": "extra Gaussian sketch columns beyond the rank (p in the paper); they improve the "
                      "subspace estimate and are not stored.",
        "power_iters": "subspace iterations per refresh (l in the paper), each re-orthonormalised: more "
                       "iterations capture a slowly decaying spectrum better at proportional cost.",
        "cosine_guidance": "scale each step by s = (1 + cos(M_t, Mhat_t)) / 2, the agreement between the "
                           "first moment and the new normalised update (needs beta1 > 0; our reading of the "
                           "paper's optional guidance, off by default).",
        "seed": "key of the Gaussian sketches (with the step count and the parameter's position): the "
                "same seed gives bit-identical runs at any thread count.",
        "maximize": "maximize the objective (the gradient is negated).",
        "warm_start": "start each refresh from the previous step's factor U (its k columns) beside "
                      "fresh Gaussian columns (at least one), and skip the subspace iterations when that basis already meets tol (the "
                      "rank rule and error stay exact for the basis used); False: the paper's fresh sketch "
                      "every step. CUDA steps always use the fresh sketch.",
    },
    "adagram": {
        "lr": "learning rate (the step G^-1/2 g has norm below 1).",
        "rank": "the largest rank k of the factors P, Q (n x k); rank >= n keeps the state exact.",
        "lr_decay": "the step size at step t is lr / (1 + (t - 1) * lr_decay).",
        "weight_decay": "L2 penalty added to the gradient.",
        "eps": "G starts at eps I: directions the factors do not hold are scaled by 1 / sqrt(eps); scale "
               "it with the square of the gradients.",
        "forget": "in [0, 1]: each step first discounts the accumulated term, P Q^T <- forget P Q^T (the "
                  "inverse factor pulled back towards I / sqrt(eps)), so old gradients fade and the step "
                  "does not vanish; 1 (default) is the paper's AdaGram, which forgets nothing.",
        "maximize": "maximize the objective (the gradient is negated).",
    },
    "fullmatrixadagrad": {
        "lr": "learning rate (the step G^-1/2 g has norm below 1, so lr bounds the parameter's step).",
        "lr_decay": "the step size at step t is lr / (1 + (t - 1) * lr_decay).",
        "weight_decay": "L2 penalty added to the gradient.",
        "eps": "G = eps I + sum g g^T: eps sits inside the inverse square root.",
        "maximize": "maximize the objective (the gradient is negated).",
    },
}

TORCH_FLAGS = {
    "foreach": "accepted for torch compatibility and ignored: the native step always runs every "
               "parameter of a group in one multithreaded call.",
    "fused": "accepted for torch compatibility and ignored (the native step is always fused).",
    "capturable": "must be False: the native step runs on CPU tensors and cannot be captured in a CUDA "
                  "graph (True raises ValueError).",
    "differentiable": "must be False: the native step is not tracked by autograd (True raises ValueError).",
}

# adapprox.jax spells arguments as the C ABI's spec keys: learning_rate for lr, beta1 and beta2 for
# betas, flags as 0/1, and Adafactor's eps pair and mode as below.
JAX_ARGS = {
    "learning_rate": "the step size: a number, or an optax schedule (a function of the step count).",
    "beta1": "decay of the first moment (the first of betas).",
    "beta2": "decay of the second moment (the second of betas).",
}
JAX_OWN = {
    "adafactor": {
        "mode": "0 for torch.optim.Adafactor step for step, 1 for the paper's algorithm (Algorithms 4/5).",
        "eps1": "regularises the squared gradients; None: the mode's default (torch mode the dtype's machine "
                "epsilon, paper mode 1e-30).",
        "eps1_auto": "1 to take eps1 as the parameter dtype's machine epsilon (torch's eps=(None, .)); None: "
                     "the default for the eps1 given.",
        "eps2": "floors RMS(p) in the step size.",
        "beta1": "paper mode only: first-moment decay of the scaled update (0: no first moment is kept).",
    },
    "adapprox": {
        "beta1": "first-moment decay (0 keeps no first moment, saving a parameter-sized buffer).",
        "beta2": "decay of the low-rank second moment.",
        "max_rank": "the rank never exceeds this; 0 means max(1, min(m, n) // 4). In JAX it is the factors' "
                    "fixed capacity: factor_q and factor_u always have this many columns.",
    },
}

TORCH_PARAMS = ("iterable of tensors or dicts (parameter groups), as torch.optim takes: CPU "
                "float32, float64, bf16 or fp16 tensors in any dense layout (complex for the "
                "elementwise optimizers), updated in place.")
NUMPY_PARAMS = ("list of NumPy arrays (float32 or float64; complex64/complex128 for the elementwise "
                "optimizers), updated in place by step(grads).")


# Every optimizer that keeps dense moments (and writes parameters) takes these two.
PRECISION_ARGS = {
    "state_precision": "'fp32' (default), 'bf16' or '8bit': how dense moments are stored. 'bf16' keeps them in "
                       "bfloat16; '8bit' as one byte per element with a float32 absmax per block of 256 (signed "
                       "moments as a 4-exponent/3-mantissa code, second moments as the square root in a "
                       "4/4 code). Second moments round stochastically (reproducibly: keyed by parameter, step and "
                       "element), first moments to nearest (stochastically where nearest would keep the old value); "
                       "each block is decoded, updated and encoded in one pass. Not with centered RMSprop. CPU only; float32/bf16/fp16 "
                       "parameters ('8bit' needs C-contiguous ones).",
    "stochastic_rounding": "write bf16 parameters with stochastic rounding (unbiased; keyed like the state's) "
                           "instead of rounding to nearest, for pure-bf16 training without float32 master weights.",
}


def _section(entries: list[tuple[str, str]]) -> str:
    lines = ["", "    Args:"]
    for name, text in entries:
        lines.append(f"        {name}: {text}")
    return "\n".join(lines) + "\n"


def documented(key: str, front: str):
    """Decorator: append the Args section for optimizer ``key`` ("adam", ...) in ``front``
    ("torch", "numpy", or "jax" for adapprox.jax's factory functions), in the order of the
    class's ``__init__`` (or the function's) arguments."""
    def wrap(cls):
        own = ARGS[key]
        jax = {**JAX_ARGS, **JAX_OWN.get(key, {})} if front == "jax" else {}
        names = [p for p in inspect.signature(cls.__init__ if inspect.isclass(cls) else cls).parameters if p != "self"]
        entries = []
        for name in names:
            if name in jax:
                entries.append((name, jax[name]))
            elif name == "params":
                entries.append((name, TORCH_PARAMS if front == "torch" else NUMPY_PARAMS))
            elif name in own:
                entries.append((name, own[name]))
            elif name in TORCH_FLAGS:
                entries.append((name, TORCH_FLAGS[name]))
            elif name in PRECISION_ARGS:
                entries.append((name, PRECISION_ARGS[name]))
            else:
                raise AssertionError(f"{cls.__qualname__}: no Args text for {name!r}")
        cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n" + _section(entries)
        return cls
    return wrap
