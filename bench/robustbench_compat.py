"""Make robustbench importable next to torchattacks. Import robustbench only through here.

Two problems with the package index's releases (robustbench 1.1.1, torchattacks 3.3.0/3.5.1):

1. `import robustbench` runs `from autoattack.state import EvaluationState`. No distribution on
   the index provides a module `autoattack` with `state`; robustbench's declared dependency
   `pyautoattack` 0.2.0 (Croce & Hein's reference AutoAttack) installs it as `pyautoattack`, with
   a newer API: keyword-only `batch_size` instead of `bs`, no `log_path`, and
   `run_standard_evaluation` returning `(x_adv, y_adv)` where robustbench expects `x_adv`. We
   register a module `autoattack` whose `AutoAttack` adapts robustbench's calls to it (seed fixed
   at 0, so robustbench's numbers are reproducible) and whose `state` is `pyautoattack.state`.
2. Both torchattacks wheels ship stale copies of `robustbench/` and `autoattack/`. Installed after
   robustbench, they overwrite its files (seen: `robustbench/eval.py` replaced by a commented-out
   2022 copy). `make install` reinstalls robustbench with `--no-deps --force-reinstall` last;
   `corrupted_files()` verifies the result against robustbench's own RECORD hashes.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
import sys
import warnings
from pathlib import Path
from types import ModuleType

from bench.errors import KdbenchError

FIX = ("reinstall robustbench's own files: `python -m pip install --no-deps --force-reinstall "
       "robustbench=={version}` (or `make install`)")


def corrupted_files(dist_name: str = "robustbench") -> list[str]:
    """Files of an installed distribution whose content differs from its RECORD (or is missing)."""
    dist = importlib.metadata.distribution(dist_name)
    bad = []
    for f in dist.files or []:
        if f.hash is None or f.hash.mode != "sha256":
            continue
        path = Path(dist.locate_file(f))
        try:
            digest = hashlib.sha256(path.read_bytes()).digest()
        except OSError:
            bad.append(str(f))
            continue
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != f.hash.value:
            bad.append(str(f))
    return bad


def _adapter_module() -> ModuleType:
    import pyautoattack
    import pyautoattack.state

    class AutoAttack(pyautoattack.AutoAttack):
        """pyautoattack's AutoAttack behind the 2022 call signature robustbench 1.1.1 uses."""

        def __init__(self, model, norm="Linf", eps=0.3, seed=0, verbose=False,
                     attacks_to_run=(), version="standard", device="cuda", log_path=None):
            super().__init__(model, norm=norm, eps=eps, seed=seed, version=version,
                             device=device, attacks=list(attacks_to_run) or None)

        def run_standard_evaluation(self, x_orig, y_orig, bs=250, return_labels=False,
                                    state_path=None):
            x_adv, y_adv = super().run_standard_evaluation(x_orig, y_orig, batch_size=bs,
                                                           state_path=state_path)
            return (x_adv, y_adv) if return_labels else x_adv

    module = ModuleType("autoattack", "kdbench adapter: robustbench's AutoAttack API over pyautoattack")
    module.AutoAttack = AutoAttack
    module.KDBENCH_ADAPTER = True
    module.state = pyautoattack.state
    module.__path__ = []  # a package, so that `import autoattack.state` resolves
    return module


def alias_autoattack() -> None:
    """Make `autoattack` (and `.state`) the adapter over the reference `pyautoattack`."""
    if getattr(sys.modules.get("autoattack"), "KDBENCH_ADAPTER", False):
        return
    module = _adapter_module()
    sys.modules["autoattack"] = module
    sys.modules["autoattack.state"] = module.state


def import_robustbench() -> ModuleType:
    """`robustbench`, imported so that it works; a clear error if its files were overwritten."""
    try:
        version = importlib.metadata.version("robustbench")
    except importlib.metadata.PackageNotFoundError:
        raise KdbenchError("robustbench is not installed; run `make install`") from None
    bad = corrupted_files()
    if bad:
        raise KdbenchError(f"robustbench {version} is damaged: {len(bad)} installed file(s) differ "
                           f"from its RECORD (e.g. {bad[0]}), most likely overwritten by the copy "
                           f"inside the torchattacks wheel; {FIX.format(version=version)}")
    alias_autoattack()
    with warnings.catch_warnings():
        # robustbench's own imports: pkg_resources and torch.jit.interface deprecations.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        return importlib.import_module("robustbench")
