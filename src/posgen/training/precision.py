"""Mixed precision and memory layout for the trainers (`train.precision`, `train.channels_last`,
`train.compile`).

bf16 keeps fp32's exponent range: autocast alone is safe. fp16 overflows above 65504, so, as in
NVlabs' StyleGAN2-ADA (`conv_clamp=256`), every convolution's output is clamped to +-256 and the
losses are scaled by a `GradScaler` that skips a step whose gradients overflowed; the discriminator
stays in fp32 (its minibatch std adds 1e-8, which fp16 flushes to 0, and R1's double backward
through that square root then gives NaN; NVlabs too keeps D's last block in fp32). fp32 (the default)
turns all of it off: the CPU path runs exactly the code it ran before.
"""
from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from torch import nn

from posgen.ops.equalized import EqualConv2d
from posgen.ops.modconv import ModulatedConv2d

CONV_CLAMP = 256.0  # NVlabs' conv_clamp for fp16 layers

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """The autocast context and gradient scaling of one run (`precision`: fp32, bf16 or fp16)."""

    def __init__(self, precision: str, device: str) -> None:
        self.name, self.dtype = precision, _DTYPES[precision]
        self.device_type = torch.device(device).type

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def scaler(self) -> torch.amp.GradScaler:
        """A loss scaler (a pass-through unless fp16)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.dtype is torch.float16)

    def prepare(self, *modules: nn.Module, channels_last: bool, fp32: tuple[nn.Module, ...] = ()) -> None:
        """Memory layout and (fp16) the conv clamp for the networks that train; the `fp32` ones run
        outside autocast under fp16."""
        for module in fp32:
            if self.dtype is torch.float16:
                module.forward = _in_fp32(module.forward, self.device_type)
        for module in modules:
            if channels_last:
                module.to(memory_format=torch.channels_last)
            if self.dtype is torch.float16:
                for m in module.modules():
                    if isinstance(m, (nn.Conv2d, ModulatedConv2d, EqualConv2d)):
                        m.register_forward_hook(_clamp)


def _in_fp32(forward, device_type: str):
    def run(x: torch.Tensor, *args, **kwargs):
        with torch.autocast(device_type, enabled=False):
            return forward(x.float(), *args, **kwargs)
    return run


def _clamp(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    return output.clamp(-CONV_CLAMP, CONV_CLAMP)


def scaler_tensors(name: str, scaler: torch.amp.GradScaler) -> dict[str, torch.Tensor]:
    """A GradScaler's state as checkpoint tensors (none when it is off)."""
    if not scaler.is_enabled():
        return {}
    sd = scaler.state_dict()
    return {f"{name}.scale": torch.tensor(float(sd["scale"])), f"{name}.growth_tracker": torch.tensor(int(sd["_growth_tracker"]))}


def restore_scaler(name: str, scaler: torch.amp.GradScaler, tensors: dict[str, torch.Tensor]) -> None:
    if scaler.is_enabled() and f"{name}.scale" in tensors:
        sd = scaler.state_dict()
        sd["scale"], sd["_growth_tracker"] = float(tensors[f"{name}.scale"]), int(tensors[f"{name}.growth_tracker"])
        scaler.load_state_dict(sd)
