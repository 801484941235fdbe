"""torchattacks and robustbench from the package index must work together (see
bench/robustbench_compat.py): robustbench's files intact, and `import robustbench` working."""

import base64
import hashlib
import sys

import pytest

from bench import robustbench_compat as rbc
from bench.errors import KdbenchError


def test_installed_robustbench_files_match_its_record():
    assert rbc.corrupted_files("robustbench") == []


def test_robustbench_imports_through_the_compat_module():
    rb = rbc.import_robustbench()
    from robustbench.data import load_cifar10c
    from robustbench.eval import benchmark
    assert callable(load_cifar10c) and callable(benchmark)
    assert rb.__name__ == "robustbench"
    import pyautoattack
    assert issubclass(sys.modules["autoattack"].AutoAttack, pyautoattack.AutoAttack)  # not a stale copy


def _fake_distribution(root, content_on_disk):
    """A minimal installed distribution whose RECORD hashes b'original'."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"original").digest()).rstrip(b"=").decode()
    (root / "fakepkg").mkdir()
    (root / "fakepkg" / "__init__.py").write_bytes(content_on_disk)
    info = root / "fakepkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"fakepkg/__init__.py,sha256={digest},8\n"
                                 "fakepkg-1.0.dist-info/RECORD,,\n")


@pytest.mark.parametrize("content, expected", [(b"original", []),
                                               (b"overwritten", ["fakepkg/__init__.py"])])
def test_corrupted_files_detects_an_overwritten_file(tmp_path, monkeypatch, content, expected):
    _fake_distribution(tmp_path, content)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert rbc.corrupted_files("fakepkg") == expected


def test_a_damaged_robustbench_gets_a_fix_not_a_traceback(monkeypatch):
    monkeypatch.setattr(rbc, "corrupted_files", lambda dist="robustbench": ["robustbench/eval.py"])
    with pytest.raises(KdbenchError, match=r"robustbench/eval.py.*--force-reinstall robustbench=="):
        rbc.import_robustbench()
