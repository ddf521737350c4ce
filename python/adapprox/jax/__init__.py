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

from .._args import documented
from ._native import NativeState, NativeTransformation, make_transformation, memory_report, rank_capacity


@documented("adam", "jax")
def adam(learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=0,
         decoupled_weight_decay=0, maximize=0, state_precision="fp32", stochastic_rounding=0) -> NativeTransformation:
    """Adam, as ``torch.optim.Adam`` (bias-corrected moments, eps outside the square root)."""
    return make_transformation("adam", learning_rate, dict(beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                                                           amsgrad=amsgrad, decoupled_weight_decay=decoupled_weight_decay,
                                                           maximize=maximize, state_precision=state_precision,
                               stochastic_rounding=stochastic_rounding))


@documented("adamw", "jax")
def adamw(learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, amsgrad=0,
          maximize=0, state_precision="fp32", stochastic_rounding=0) -> NativeTransformation:
    """AdamW, as ``torch.optim.AdamW``: Adam with decoupled weight decay, p <- p (1 - lr wd) first
    (the same update as ``optax.adamw`` with the same arguments)."""
    return make_transformation("adamw", learning_rate, dict(beta1=beta1, beta2=beta2, eps=eps,
                                                            weight_decay=weight_decay, amsgrad=amsgrad,
                                                            maximize=maximize, state_precision=state_precision,
                               stochastic_rounding=stochastic_rounding))


@documented("nadam", "jax")
def nadam(learning_rate=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
          decoupled_weight_decay=0, maximize=0, state_precision="fp32", stochastic_rounding=0) -> NativeTransformation:
    """NAdam, as ``torch.optim.NAdam`` (Nesterov momentum with the mu_t schedule)."""
    return make_transformation("nadam", learning_rate, dict(beta1=beta1, beta2=beta2, eps=eps,
                                                            weight_decay=weight_decay, momentum_decay=momentum_decay,
                                                            decoupled_weight_decay=decoupled_weight_decay,
                                                            maximize=maximize, state_precision=state_precision,
                               stochastic_rounding=stochastic_rounding))


@documented("rmsprop", "jax")
def rmsprop(learning_rate=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=0,
            maximize=0, state_precision="fp32", stochastic_rounding=0) -> NativeTransformation:
    """RMSprop, as ``torch.optim.RMSprop`` (eps outside the square root)."""
    return make_transformation("rmsprop", learning_rate, dict(alpha=alpha, eps=eps, weight_decay=weight_decay,
                                                              momentum=momentum, centered=centered, maximize=maximize, state_precision=state_precision,
                               stochastic_rounding=stochastic_rounding))


@documented("adagrad", "jax")
def adagrad(learning_rate=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
            maximize=0, state_precision="fp32", stochastic_rounding=0) -> NativeTransformation:
    """Adagrad, as ``torch.optim.Adagrad``."""
    return make_transformation("adagrad", learning_rate, dict(lr_decay=lr_decay, weight_decay=weight_decay,
                                                              initial_accumulator_value=initial_accumulator_value,
                                                              eps=eps, maximize=maximize, state_precision=state_precision,
                               stochastic_rounding=stochastic_rounding))


@documented("sgd", "jax")
def sgd(learning_rate=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=0, maximize=0, state_precision="fp32", stochastic_rounding=0) -> NativeTransformation:
    """SGD with optional momentum, as ``torch.optim.SGD`` (the first step's buffer is the gradient)."""
    return make_transformation("sgd", learning_rate, dict(momentum=momentum, dampening=dampening,
                                                          weight_decay=weight_decay, nesterov=nesterov,
                                                          maximize=maximize, state_precision=state_precision,
                               stochastic_rounding=stochastic_rounding))


@documented("signsgd", "jax")
def signsgd(learning_rate=1e-3, momentum=0.0, weight_decay=0.0, maximize=0, state_precision="fp32", stochastic_rounding=0) -> NativeTransformation:
    """SignSGD (signum with momentum): p <- p - lr sign(m), m the gradient's momentum."""
    return make_transformation("signsgd", learning_rate, dict(momentum=momentum, weight_decay=weight_decay,
                                                              maximize=maximize, state_precision=state_precision,
                               stochastic_rounding=stochastic_rounding))


@documented("adafactor", "jax")
def adafactor(learning_rate=1e-2, beta2_decay=-0.8, eps1=None, eps1_auto=None, eps2=1e-3, d=1.0, weight_decay=0.0,
              mode=0, beta1=0.0, relative_step=1, scale_parameter=1, maximize=0, state_precision="fp32", stochastic_rounding=0) -> NativeTransformation:
    """Adafactor: mode=0 is ``torch.optim.Adafactor``, mode=1 the paper's algorithm (factored
    second moments of matrices; adapprox.torch.Adafactor documents both). Not ``optax.adafactor``,
    whose defaults and update differ (clipping, parameter scaling, factoring threshold)."""
    if eps1_auto is None:  # as the spec strings: eps1 given turns the automatic one off; paper: 1e-30
        eps1_auto = 0 if eps1 is not None or mode else 1
        if eps1 is None and mode:
            eps1 = 1e-30
    return make_transformation("adafactor", learning_rate, dict(beta2_decay=beta2_decay, eps1=eps1, eps1_auto=eps1_auto,
                                                                eps2=eps2, d=d, weight_decay=weight_decay, mode=mode,
                                                                beta1=beta1, relative_step=relative_step,
                                                                scale_parameter=scale_parameter, maximize=maximize, state_precision=state_precision,
                               stochastic_rounding=stochastic_rounding))


@documented("adapprox", "jax")
def adapprox(learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, clip_threshold=1.0, rank=1,
             min_rank=1, max_rank=0, tol=1e-2, oversample=5, power_iters=1, seed=0, cosine_guidance=0,
             warm_start=1, maximize=0, state_precision="fp32", stochastic_rounding=0) -> NativeTransformation:
    """Adapprox: Adam whose second moment of each matrix is a low-rank factorization Q U^T,
    refreshed every step by adaptive randomized subspace iteration (adapprox.torch.Adapprox
    documents the algorithm). Here the factors are held at their capacity rank."""
    return make_transformation("adapprox", learning_rate, dict(beta1=beta1, beta2=beta2, eps=eps,
                                                               weight_decay=weight_decay, clip_threshold=clip_threshold,
                                                               rank=rank, min_rank=min_rank, max_rank=max_rank, tol=tol,
                                                               oversample=oversample, power_iters=power_iters, seed=seed,
                                                               cosine_guidance=cosine_guidance, warm_start=warm_start,
                                                               maximize=maximize, state_precision=state_precision,
                               stochastic_rounding=stochastic_rounding))


__all__ = ["adafactor", "adagrad", "adam", "adamw", "adapprox", "memory_report", "nadam", "NativeState",
           "NativeTransformation", "rank_capacity", "rmsprop", "sgd", "signsgd"]
