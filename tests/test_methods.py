"""Every registered method, whatever its name (timm's habit: tests over the registry, not over a
hand-written list): it is complete, takes one real training step, and trains under --smoke."""

import pytest
import torch

import methods
from bench.plugin_check import one_step
from bench.records import read_record
from methods.api import FAMILIES, HParams
from support import kdbench

SPECS, LOAD_ERRORS = methods.discover()
NAMES = sorted(SPECS)


def test_every_builtin_method_file_loads():
    assert LOAD_ERRORS == []
    assert {"baseline", "vanilla", "pgd_at"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_method_declares_what_the_board_shows(name):
    cls = SPECS[name].cls
    assert cls.family in FAMILIES and cls.description.strip()
    assert issubclass(cls.Hparams, HParams)
    cls.Hparams().model_dump()  # every hyper-parameter has a default
    assert cls.__doc__ or cls.source_file().read_text().lstrip().startswith('"""'), \
        f"{name}: say in its module docstring what it is and cite its paper"


@pytest.mark.parametrize("name", NAMES)
def test_method_trains_for_one_real_step(name):
    loss = one_step(SPECS[name].cls)
    assert loss.dim() == 0 and torch.isfinite(loss)


@pytest.fixture(scope="session")
def every_method_smoke(smoke_run, tmp_path_factory):
    root, _ = smoke_run
    out = tmp_path_factory.mktemp("every-method")
    proc = kdbench("run", "--smoke", "-q", "--methods", ",".join(NAMES), "--results-dir",
                   str(out), "--cache-dir", str(root / "cache"))
    return out, proc


@pytest.mark.integration
@pytest.mark.parametrize("name", NAMES)
def test_method_trains_and_is_evaluated_under_smoke(name, every_method_smoke):
    out, proc = every_method_smoke
    assert proc.returncode == 0, proc.stderr
    rec = read_record(out / "mnist5k" / name / "seed-0.json")
    assert rec.smoke and rec.family == SPECS[name].cls.family
    assert rec.hparams == SPECS[name].default_hparams().model_dump()
