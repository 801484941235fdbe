"""Where a number came from: library versions, machine, code revision."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import torch

from bench.files import file_sha256


REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("bench", "methods", "attacks", "leaderboard")  # the repository's own code
# The harness: what HARNESS_VERSION stands for (bench/harness.py), not hashed per job.
HARNESS_FILES = (REPO_ROOT / "bench", REPO_ROOT / "methods" / "api.py",
                 REPO_ROOT / "methods" / "__init__.py")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str | None:
    """The repository's HEAD, with '+dirty' when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str) -> dict:
    return {
        "kdbench": _version("kdbench"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "torchattacks": _version("torchattacks"),
        "numpy": _version("numpy"),
        "onnx": _version("onnx"),
        "onnxscript": _version("onnxscript"),
        "onnxruntime": _version("onnxruntime"),
        "platform": platform.platform(),
        "device": device,
        "cpu": cpu_name(),
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
    }


def relative_to_repo(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _module_file(name: str) -> Path | None:
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None) if module is not None else None
    if origin is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError):
            return None  # not a module (a name imported from one), or not importable
        origin = spec.origin if spec is not None else None
    return Path(origin).resolve() if origin and origin.endswith(".py") else None


def _imported_names(tree: ast.AST, package: str) -> Iterable[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in (*parts, base) if p)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`


def _is_harness(path: Path) -> bool:
    return any(path == h or h in path.parents for h in HARNESS_FILES)


def code_dependencies(module: str) -> list[Path]:
    """The source file of `module` and of every module it imports, directly or through others,
    that is the project's own code: in the repository's packages, or in `module`'s own top-level
    package (a method living in its author's package). The harness (bench/, methods/api.py) is left out:
    HARNESS_VERSION stands for it. Imports are read with `ast`, nothing is executed."""
    start = _module_file(module)
    if start is None:
        raise ValueError(f"no source file for module {module!r}")
    top = sys.modules.get(module.split(".")[0])
    roots = [REPO_ROOT / p for p in PROJECT_PACKAGES]
    roots += [Path(p).resolve() for p in getattr(top, "__path__", [])]
    seen: dict[Path, None] = {}
    todo = [(module, start)]
    while todo:
        name, path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for imported in _imported_names(ast.parse(path.read_text()), package):
            if not imported:
                continue
            dep = _module_file(imported)
            if (dep is not None and dep not in seen and not _is_harness(dep)
                    and any(r == dep or r in dep.parents for r in roots)):
                todo.append((imported, dep))
    return sorted(seen)


def source_digests(files: Iterable[Path]) -> dict[str, str]:
    """repo-relative path (or absolute, outside the repository) -> sha256 of the file."""
    return {relative_to_repo(f): file_sha256(f) for f in sorted(set(files))}
