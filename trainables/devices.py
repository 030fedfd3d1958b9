"""Device auto-detection: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch

__all__ = ["fits_on_device", "resolve_device"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` as a :class:`torch.device`, or the best available one when None.

    Raises:
        ValueError: the requested device type is not available on this machine, so a
            config written for a GPU box fails loudly instead of training on CPU.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use device='cpu' or None (auto)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {str(device)!r} requested but MPS is not available; use device='cpu' or None (auto)")
    return dev


def fits_on_device(device: str | torch.device, nbytes: int, share: float = 0.5) -> bool:
    """Whether ``nbytes`` fit in ``share`` of the memory now free on ``device``.

    Only CUDA reports its free memory; any other device is taken to have room (the CPU's
    and Apple's memory is the host's). The share leaves the rest to activations, optimizer
    state and other trials placed on the same GPU.
    """
    dev = torch.device(device)
    if dev.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(dev)
    return nbytes <= share * free
