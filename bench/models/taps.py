"""Feature taps by module name through forward hooks (torchdistill's ForwardHookManager idea):
losses read `outputs.features[name]` and never reach into model internals.

`tapped(model, taps, mode=...)` is the one way to tap a model: a context manager that owns the
hooks' lifetime (and, when asked, the model's train/eval mode), so a model never keeps a hook or a
mode it was not built with.

A tap names a module. A model whose stages are modules under other names (a RobustBench zoo
network: `stage1` is its `layer2`) maps them in a `stage_paths` attribute (bench/models/zoo.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

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
        paths = getattr(model, "stage_paths", {})
        for name in self.taps:
            try:
                module = model.get_submodule(paths.get(name, name))
            except AttributeError:
                self.remove()
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


@contextlib.contextmanager
def tapped(model: nn.Module, taps: Sequence[str] = (),
           mode: Literal["train", "eval"] | None = None) -> Iterator[TappedModel]:
    """`model` tapped at `taps` for the block; hooks removed and the model's train/eval mode
    restored afterwards. `mode` sets the mode inside the block (None leaves it as it is)."""
    was_training = model.training
    if mode is not None:
        model.train(mode == "train")
    t = TappedModel(model, taps)
    try:
        yield t
    finally:
        t.remove()
        model.train(was_training)


def feature_shapes(model: nn.Module, taps: tuple[str, ...], example: torch.Tensor
                   ) -> dict[str, tuple[int, ...]]:
    """(C, H, W) of each tapped stage, from one forward pass in eval mode."""
    if not taps:
        return {}
    with tapped(model, taps, mode="eval") as t, torch.no_grad():
        out = t(example[:1])
    return {name: tuple(out.features[name].shape[1:]) for name in taps}
