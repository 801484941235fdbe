"""`kdbench doctor`: is the installation whole? torch, the named libraries, robustbench's own
files (the torchattacks wheels can overwrite them) and its import, the embedded data, CUDA."""

from __future__ import annotations

import importlib.metadata as md

from bench.errors import KdbenchError
from bench.protocols import DEFAULT_PROTOCOL, get_protocol

DISTRIBUTIONS = ("torchattacks", "robustbench", "pyautoattack", "mlxtend", "streamlit", "onnx",
                 "onnxscript", "onnxruntime")


def checks() -> tuple[list[str], list[str]]:
    """(what was found, problems), each a line of text."""
    import torch

    from bench import robustbench_compat as rbc
    from bench.data import load_split
    lines, problems = [], []
    cuda = (f"available: {torch.cuda.get_device_name()}" if torch.cuda.is_available()
            else "not available (CPU only)")
    lines.append(f"torch {torch.__version__}, CUDA {cuda}")
    for dist in DISTRIBUTIONS:
        try:
            lines.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            problems.append(f"{dist} is not installed; run `make install`")
    try:
        rbc.import_robustbench()
        from robustbench.data import load_cifar10c  # noqa: F401
        from robustbench.eval import benchmark  # noqa: F401
        lines.append("robustbench: files match its RECORD; imports with the autoattack alias")
    except KdbenchError as e:
        problems.append(str(e))
    try:
        split = load_split(get_protocol(DEFAULT_PROTOCOL))
        lines.append(f"{DEFAULT_PROTOCOL} data: {len(split.x_train)} train / "
                     f"{len(split.x_test)} test images (fingerprint {split.fingerprint})")
    except KdbenchError as e:
        problems.append(str(e))
    return lines, problems
