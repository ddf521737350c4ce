"""Helpers for step-by-step comparisons against torch.optim (the independent reference)."""
import torch


def rel_err(ours, ref):
    """max |ours - ref| / max |ref|, in float64 (tensors or NumPy arrays)."""
    ours, ref = torch.as_tensor(ours).double(), torch.as_tensor(ref).double()
    return ((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-300)).item()


def data(shape, dtype, steps, seed=0):
    """A starting parameter and `steps` gradients, drawn in float64 and cast to `dtype`."""
    gen = torch.Generator().manual_seed(seed)
    p0 = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    grads = [torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) for _ in range(steps)]
    return p0, grads
