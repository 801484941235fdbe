import sys

import pytest

import methods
from methods.api import HParams, Method, register_method, registry


def test_discover_finds_the_builtin_methods():
    specs, errors = methods.discover()
    assert {"baseline", "vanilla"} <= set(specs)
    assert errors == []
    assert specs["vanilla"].cls.family == "logit"
    assert specs["baseline"].cls.uses_teacher is False


def test_hyperparameters_have_recorded_defaults():
    specs, _ = methods.discover()
    assert specs["vanilla"].default_hparams().model_dump() == {"T": 4.0, "alpha": 0.9}
    with pytest.raises(Exception, match="extra"):
        specs["vanilla"].cls.Hparams(T=2.0, beta=1.0)  # unknown hyper-parameters are refused


def test_register_rejects_incomplete_methods():
    with pytest.raises(TypeError, match="'description'"):
        @register_method
        class NoDescription(Method):
            name = "no_description"
            family = "logit"

    with pytest.raises(TypeError, match="family must be one of"):
        @register_method
        class BadFamily(Method):
            name, description, family = "bad_family", "x", "magic"

    with pytest.raises(TypeError, match="Hparams must subclass"):
        @register_method
        class BadHparams(Method):
            name, description, family = "bad_hparams", "x", "logit"
            Hparams = dict
    assert not {"no_description", "bad_family", "bad_hparams"} & set(registry())


def test_a_name_registered_from_two_files_is_an_error(tmp_path, monkeypatch):
    src = tmp_path / "dup_vanilla.py"
    src.write_text(
        "from methods.api import Method, register_method\n"
        "@register_method\n"
        "class Dup(Method):\n"
        "    name, description, family = 'vanilla', 'x', 'logit'\n")
    import importlib.util
    spec = importlib.util.spec_from_file_location("dup_vanilla", src)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "dup_vanilla", module)
    with pytest.raises(ValueError, match="registered twice"):
        spec.loader.exec_module(module)
    assert registry()["vanilla"].cls.__module__ == "methods.vanilla"


def test_perturb_hook_is_detected():
    specs, _ = methods.discover()
    assert not specs["vanilla"].cls.has_perturb()

    class WithPerturb(Method):
        def perturb(self, batch, student, teacher):
            return batch.x
    assert WithPerturb.has_perturb()
