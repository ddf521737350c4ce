"""adapprox.jax: the native optimizers as optax-style gradient transformations for JAX (CPU).

Each factory returns a :class:`NativeTransformation`, ``(init, update, step)``: ``init(params)``
builds the state, ``update(grads, state, params)`` returns ``(updates, state)`` as optax does
(``optax.apply_updates`` adds them), and ``step(params, grads, state)`` returns the new parameters
directly. Both run one XLA FFI custom call (registered through ``jax.ffi``) that steps every
parameter of the pytree with the same C++ kernels as ``adapprox.torch`` and ``adapprox.numpy``,
under ``jax.jit``, on buffers aliased from operands to results; ``jax.jit(tx.step,
donate_argnums=(0, 2))`` steps the donated parameters and state in place.

Hyperparameters are the C ABI's spec keys (``adx_spec_keys``), with torch's defaults and
semantics; ``learning_rate`` may be an optax schedule of the step count. Adapprox's factors live
at a fixed capacity in JAX (shapes are static): ``factor_q`` is (m, cap) and ``factor_u`` (n, cap)
with cap the largest rank the step may choose (``max_rank``, default max(1, min(m, n) // 4)), and
``factor_q_cols`` holds the rank in use; ``memory_report(state, params)`` counts that capacity.
CPU arrays only; float32 parameters (float64 ones with ``jax_enable_x64``).
"""
from __future__ import annotations

from ._native import NativeState, NativeTransformation, make_transformation, memory_report, rank_capacity



def adam(learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=0,
         decoupled_weight_decay=0, maximize=0) -> NativeTransformation:
    """Adam, as ``torch.optim.Adam`` (bias-corrected moments, eps outside the square root).

    Args:
        learning_rate: the step size: a number, or an optax schedule (a function of the step count).
        beta1: decay of the first moment (the gradient's running mean).
        beta2: decay of the second moment (the squared gradient's running mean).
        eps: added to the denominator's square root, for stability.
        weight_decay: L2 penalty added to the gradient (decoupled when decoupled_weight_decay=1).
        amsgrad: 1 to divide by the running maximum of the second moment (AMSGrad).
        decoupled_weight_decay: 1 for AdamW's decoupled weight decay.
        maximize: 1 to maximize the objective (torch's maximize).
    """
    return make_transformation("adam", learning_rate, dict(beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                                                           amsgrad=amsgrad, decoupled_weight_decay=decoupled_weight_decay,
                                                           maximize=maximize))


def adamw(learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, amsgrad=0,
          maximize=0) -> NativeTransformation:
    """AdamW, as ``torch.optim.AdamW``: Adam with decoupled weight decay, p <- p (1 - lr wd) first
    (the same update as ``optax.adamw`` with the same arguments).

    Args:
        learning_rate: the step size: a number, or an optax schedule (a function of the step count).
        beta1: decay of the first moment (the gradient's running mean).
        beta2: decay of the second moment (the squared gradient's running mean).
        eps: added to the denominator's square root, for stability.
        weight_decay: the decoupled weight-decay coefficient (torch's default 1e-2).
        amsgrad: 1 to divide by the running maximum of the second moment (AMSGrad).
        maximize: 1 to maximize the objective (torch's maximize).
    """
    return make_transformation("adamw", learning_rate, dict(beta1=beta1, beta2=beta2, eps=eps,
                                                            weight_decay=weight_decay, amsgrad=amsgrad,
                                                            maximize=maximize))


def nadam(learning_rate=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
          decoupled_weight_decay=0, maximize=0) -> NativeTransformation:
    """NAdam, as ``torch.optim.NAdam`` (Nesterov momentum with the mu_t schedule).

    Args:
        learning_rate: the step size: a number, or an optax schedule (a function of the step count).
        beta1: decay of the first moment (the gradient's running mean).
        beta2: decay of the second moment (the squared gradient's running mean).
        eps: added to the denominator's square root, for stability.
        weight_decay: L2 penalty added to the gradient (decoupled when decoupled_weight_decay=1).
        momentum_decay: the psi of mu_t = beta1 (1 - 0.5 * 0.96^(t psi)).
        decoupled_weight_decay: 1 for decoupled weight decay (NAdamW).
        maximize: 1 to maximize the objective (torch's maximize).
    """
    return make_transformation("nadam", learning_rate, dict(beta1=beta1, beta2=beta2, eps=eps,
                                                            weight_decay=weight_decay, momentum_decay=momentum_decay,
                                                            decoupled_weight_decay=decoupled_weight_decay,
                                                            maximize=maximize))


def rmsprop(learning_rate=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=0,
            maximize=0) -> NativeTransformation:
    """RMSprop, as ``torch.optim.RMSprop`` (eps outside the square root).

    Args:
        learning_rate: the step size: a number, or an optax schedule (a function of the step count).
        alpha: decay of the squared gradient's running mean.
        eps: added to the denominator's square root, for stability.
        weight_decay: L2 penalty added to the gradient.
        momentum: momentum of the update (0: none).
        centered: 1 to divide by the running variance (mean of g^2 minus the squared mean of g).
        maximize: 1 to maximize the objective (torch's maximize).
    """
    return make_transformation("rmsprop", learning_rate, dict(alpha=alpha, eps=eps, weight_decay=weight_decay,
                                                              momentum=momentum, centered=centered, maximize=maximize))


def adagrad(learning_rate=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
            maximize=0) -> NativeTransformation:
    """Adagrad, as ``torch.optim.Adagrad``.

    Args:
        learning_rate: the step size: a number, or an optax schedule (a function of the step count).
        lr_decay: the step size at step t is lr / (1 + (t - 1) lr_decay).
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: the starting value of the sum of squared gradients.
        eps: added to the denominator's square root, for stability.
        maximize: 1 to maximize the objective (torch's maximize).
    """
    return make_transformation("adagrad", learning_rate, dict(lr_decay=lr_decay, weight_decay=weight_decay,
                                                              initial_accumulator_value=initial_accumulator_value,
                                                              eps=eps, maximize=maximize))


def sgd(learning_rate=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=0, maximize=0) -> NativeTransformation:
    """SGD with optional momentum, as ``torch.optim.SGD`` (the first step's buffer is the gradient).

    Args:
        learning_rate: the step size: a number, or an optax schedule (a function of the step count).
        momentum: the momentum factor (0: plain SGD).
        dampening: dampening of the momentum's gradient term.
        weight_decay: L2 penalty added to the gradient.
        nesterov: 1 for Nesterov momentum.
        maximize: 1 to maximize the objective (torch's maximize).
    """
    return make_transformation("sgd", learning_rate, dict(momentum=momentum, dampening=dampening,
                                                          weight_decay=weight_decay, nesterov=nesterov,
                                                          maximize=maximize))


def signsgd(learning_rate=1e-3, momentum=0.0, weight_decay=0.0, maximize=0) -> NativeTransformation:
    """SignSGD (signum with momentum): p <- p - lr sign(m), m the gradient's momentum.

    Args:
        learning_rate: the step size: a number, or an optax schedule (a function of the step count).
        momentum: the momentum of the gradient whose sign is taken (0: the gradient's sign).
        weight_decay: the decoupled weight-decay coefficient.
        maximize: 1 to maximize the objective (torch's maximize).
    """
    return make_transformation("signsgd", learning_rate, dict(momentum=momentum, weight_decay=weight_decay,
                                                              maximize=maximize))


def adafactor(learning_rate=1e-2, beta2_decay=-0.8, eps1=None, eps1_auto=None, eps2=1e-3, d=1.0, weight_decay=0.0,
              mode=0, beta1=0.0, relative_step=1, scale_parameter=1, maximize=0) -> NativeTransformation:
    """Adafactor: mode=0 is ``torch.optim.Adafactor``, mode=1 the paper's algorithm (factored
    second moments of matrices; adapprox.torch.Adafactor documents both). Not ``optax.adafactor``,
    whose defaults and update differ (clipping, parameter scaling, factoring threshold).

    Args:
        learning_rate: the step size (torch mode; the cap of the relative step in paper mode).
        beta2_decay: the exponent of the second moment's decay, beta2_t = 1 - t^beta2_decay.
        eps1: the epsilon added to g^2 (paper) or the denominator's floor (torch); None: the mode's default
            (torch: the dtype's machine epsilon; paper: 1e-30).
        eps1_auto: 1 to take eps1 as the parameter dtype's machine epsilon (torch's eps=(None, .)); None: the default.
        eps2: the floor of the parameter scale.
        d: the update clipping threshold.
        weight_decay: the weight-decay coefficient.
        mode: 0 for torch.optim.Adafactor, 1 for the paper's algorithm.
        beta1: first-moment decay (paper mode; 0 keeps no first moment).
        relative_step: 1 for the paper's relative step size (paper mode).
        scale_parameter: 1 to scale the step by the parameter's RMS (paper mode).
        maximize: 1 to maximize the objective (torch's maximize).
    """
    if eps1_auto is None:  # as the spec strings: eps1 given turns the automatic one off; paper: 1e-30
        eps1_auto = 0 if eps1 is not None or mode else 1
        if eps1 is None and mode:
            eps1 = 1e-30
    return make_transformation("adafactor", learning_rate, dict(beta2_decay=beta2_decay, eps1=eps1, eps1_auto=eps1_auto,
                                                                eps2=eps2, d=d, weight_decay=weight_decay, mode=mode,
                                                                beta1=beta1, relative_step=relative_step,
                                                                scale_parameter=scale_parameter, maximize=maximize))


def adapprox(learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, clip_threshold=1.0, rank=1,
             min_rank=1, max_rank=0, tol=1e-2, oversample=5, power_iters=1, seed=0, cosine_guidance=0,
             warm_start=1, maximize=0) -> NativeTransformation:
    """Adapprox: Adam whose second moment of each matrix is a low-rank factorization Q U^T,
    refreshed every step by adaptive randomized subspace iteration (adapprox.torch.Adapprox
    documents the algorithm). Here the factors are held at their capacity rank.

    Args:
        learning_rate: the step size: a number, or an optax schedule (a function of the step count).
        beta1: decay of the first moment (0 keeps none).
        beta2: decay of the factored second moment.
        eps: added to the denominator, for stability.
        weight_decay: the decoupled weight-decay coefficient.
        clip_threshold: the update's RMS is clipped to this (as Adafactor's d).
        rank: the starting rank of each factorization.
        min_rank: the smallest rank the step may choose.
        max_rank: the largest rank (0: max(1, min(m, n) // 4)); the factors' capacity in JAX.
        tol: relative error of the factorization the rank is chosen for.
        oversample: extra sketch columns beyond the rank.
        power_iters: subspace iterations when the sketch misses tol.
        seed: key of the Gaussian sketches.
        cosine_guidance: 1 to scale the step by the cosine of momentum and gradient.
        warm_start: 1 to start each step's sketch from the previous factor (0: the paper's fresh sketch).
        maximize: 1 to maximize the objective (torch's maximize).
    """
    return make_transformation("adapprox", learning_rate, dict(beta1=beta1, beta2=beta2, eps=eps,
                                                               weight_decay=weight_decay, clip_threshold=clip_threshold,
                                                               rank=rank, min_rank=min_rank, max_rank=max_rank, tol=tol,
                                                               oversample=oversample, power_iters=power_iters, seed=seed,
                                                               cosine_guidance=cosine_guidance, warm_start=warm_start,
                                                               maximize=maximize))


__all__ = ["adafactor", "adagrad", "adam", "adamw", "adapprox", "memory_report", "nadam", "NativeState",
           "NativeTransformation", "rank_capacity", "rmsprop", "sgd", "signsgd"]
