"""Which torch device a command runs on (``--device auto|cpu|cuda|cuda:N|mps``)."""

from __future__ import annotations

import torch

from liftbench.errors import ConfigError


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; an unavailable explicit device is an error."""
    device = (device or "auto").strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"--device '{device}' is not a device; use auto, cpu, cuda, cuda:N or mps.") from exc
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"--device {device}: CUDA is not available here ({torch.cuda.device_count()} GPU(s)); "
                          "use --device cpu or auto.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {device}: MPS is not available here; use --device cpu or auto.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device '{device}' is not supported; use auto, cpu, cuda, cuda:N or mps.")
    return dev
