"""Helpers for step-by-step parity tests against torch.optim (the independent reference)."""
import torch


def rel_err(ours, ref):
    """max |ours - ref| / max |ref|, in float64."""
    ours, ref = ours.double(), ref.double()
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def data(shape, dtype, steps, seed=0):
    """A starting parameter and `steps` gradients, drawn in float64 and cast to `dtype`."""
    gen = torch.Generator().manual_seed(seed)
    p0 = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    grads = [torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) for _ in range(steps)]
    return p0, grads


def make_pair(torch_cls, our_cls, shape, dtype, kwargs, steps=50, seed=0):
    """(ref param, our param, torch optimizer (single-tensor path), our optimizer, gradients)."""
    p0, grads = data(shape, dtype, steps, seed)
    ref, ours = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    return ref, ours, torch_cls([ref], foreach=False, **kwargs), our_cls([ours], **kwargs), grads


def step_both(ref, ours, opt_ref, opt_ours, g):
    ref.grad, ours.grad = g.clone(), g.clone()
    opt_ref.step()
    opt_ours.step()
