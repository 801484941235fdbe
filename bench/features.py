"""Feature taps by module name through forward hooks (torchdistill's ForwardHookManager idea):
losses read `outputs.features[name]` and never reach into model internals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Outputs:
    logits: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)


class TappedModel:
    """Calls `model` and returns its logits with the outputs of the named modules."""

    def __init__(self, model: nn.Module, taps: Sequence[str] = ()):
        self.model = model
        self.taps = tuple(taps)
        self._store: dict[str, torch.Tensor] = {}
        self._handles = []
        for name in self.taps:
            try:
                module = model.get_submodule(name)
            except AttributeError:
                raise ValueError(f"{type(model).__name__} has no module {name!r}; its stages are "
                                 f"{getattr(model, 'stages', ())}") from None
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            self._store[name] = output
        return hook

    def __call__(self, x: torch.Tensor) -> Outputs:
        self._store = {}
        logits = self.model(x)
        return Outputs(logits, dict(self._store))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
