"""Helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import torch


def write_zoo_checkpoint(model_dir: Path, name: str, prefix: str = "module.",
                         wrap: bool = True, seed: int = 0) -> tuple[Path, dict]:
    """Random weights of RobustBench's CIFAR-10 L-inf zoo entry `name`, saved where robustbench's
    load_model looks (<model_dir>/cifar10/Linf/<name>.pt) the way checkpoints of the zoo come:
    keys with the `prefix` DataParallel adds, under 'state_dict' when `wrap`. The network is
    built by robustbench itself, not by kdbench. Returns the path and the (unprefixed) weights."""
    from bench.robustbench_compat import import_robustbench
    import_robustbench()
    from robustbench.model_zoo.cifar10 import cifar_10_models
    from robustbench.model_zoo.enums import ThreatModel

    torch.manual_seed(seed)
    model = cifar_10_models[ThreatModel.Linf][name]["model"]()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    prefixed = {prefix + k: v for k, v in state.items()}
    path = Path(model_dir) / "cifar10" / "Linf" / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": prefixed, "epoch": 100} if wrap else prefixed, path)
    return path, state
