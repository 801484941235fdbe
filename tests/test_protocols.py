import dataclasses
import subprocess
import sys

import pytest

from bench.errors import UsageError
from bench.protocols import (PROTOCOLS, DeploySuite, EvalSuite, Protocol, SmokeBudget,
                             TrainRecipe, get_protocol)


def test_registry_lists_the_default_protocol():
    assert "mnist5k" in PROTOCOLS
    assert get_protocol("mnist5k").name == "mnist5k"


def test_unknown_protocol_names_the_available_ones():
    with pytest.raises(UsageError, match="unknown protocol 'nope'.*mnist5k"):
        get_protocol("nope")


def test_hash_is_stable_across_processes(protocol):
    code = "from bench.protocols import get_protocol; print(get_protocol('mnist5k').hash)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == protocol.hash
    assert get_protocol("mnist5k").hash == protocol.hash


def _changed(value):
    if value is None:
        return 1
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return value[:-1] if len(value) > 1 else value + value
    raise TypeError(type(value))


def _leaf_changes(obj, prefix=""):
    """Every protocol with exactly one leaf field changed, with the field's path."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, (TrainRecipe, EvalSuite, DeploySuite, SmokeBudget)):
            for path, changed in _leaf_changes(value, f"{prefix}{f.name}."):
                yield path, dataclasses.replace(obj, **{f.name: changed})
        else:
            yield prefix + f.name, dataclasses.replace(obj, **{f.name: _changed(value)})


def test_hash_changes_when_any_field_changes(protocol):
    changes = list(_leaf_changes(protocol))
    assert len(changes) > 30  # every leaf of the protocol, recipes and eval suite included
    hashes = {path: p.hash for path, p in changes}
    same = [path for path, h in hashes.items() if h == protocol.hash]
    assert not same, f"hash ignores {same}"
    assert len(set(hashes.values())) == len(hashes)


def test_smoke_protocol_is_a_different_protocol(protocol):
    smoke = protocol.for_smoke()
    assert smoke.smoke and not protocol.smoke
    assert smoke.hash != protocol.hash
    assert smoke.student_recipe.epochs == 2 and smoke.n_test <= 200 and smoke.n_train == 1000


def test_protocols_are_frozen(protocol):
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.n_test = 5
    assert isinstance(protocol, Protocol)


def test_every_registered_protocol_has_at_least_three_seeds():
    assert all(len(set(fn().seeds)) >= 3 for fn in PROTOCOLS.values())


def test_registering_a_protocol_with_fewer_than_three_seeds_fails(protocol):
    from bench.protocols import register_protocol
    one_seed = dataclasses.replace(protocol, name="one-seed", seeds=(0,))
    with pytest.raises(ValueError, match="at least 3"):
        register_protocol(lambda: one_seed)
    assert "one-seed" not in PROTOCOLS


def test_mnist5k_robust_differs_from_mnist5k_only_in_its_teacher(protocol):
    from bench.protocols import TEACHER_FIELDS, student_side
    robust = get_protocol("mnist5k-robust")
    differ = {f.name for f in dataclasses.fields(Protocol)
              if getattr(protocol, f.name) != getattr(robust, f.name)}
    assert differ == {"name", "description", "teacher_method", "teacher_recipe"}
    assert differ - {"name", "description"} <= set(TEACHER_FIELDS)
    assert robust.teacher_method == "pgd_at"  # PGD adversarial training at the protocol's eps
    # half the learning rate, as cifar10-robust halves cifar10's; the rest of the recipe is kept
    assert robust.teacher_recipe == dataclasses.replace(protocol.teacher_recipe,
                                                        lr=protocol.teacher_recipe.lr / 2)
    assert get_protocol("cifar10-robust").teacher_recipe.lr == get_protocol("cifar10").teacher_recipe.lr / 2
    assert student_side(robust) == student_side(protocol) and robust.hash != protocol.hash
    assert student_side(get_protocol("cifar10")) != student_side(protocol)


def test_make_bench_runs_every_embedded_protocol():
    from bench.protocols import embedded_protocols
    from support import REPO
    assert embedded_protocols() == ["mnist5k", "mnist5k-robust"]
    lines = (REPO / "Makefile").read_text().splitlines()
    [line] = [ln for ln in lines if ln.startswith("BENCH_PROTOCOLS ?=")]
    assert line.split("?=")[1].split() == embedded_protocols()
    bench = lines[lines.index("bench: install") + 1:]
    assert "--protocol $$p" in "\n".join(bench[:4]) and "$(BENCH_PROTOCOLS)" in bench[0]
