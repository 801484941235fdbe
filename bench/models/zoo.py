"""RobustBench's model zoo as a teacher architecture.

`robustbench-zoo` builds the network of the protocol's `teacher_source` (bench/protocols.py:
ZooTeacher) from `robustbench.model_zoo`: the architecture RobustBench itself loads the entry
into. Its weights come from bench/models/zoo_checkpoint.py.

Inputs: zoo networks take images in [0, 1], and those trained on normalised inputs normalise
inside (buffers `mu`/`sigma` or `mean`/`std`, or per-image standardisation): RobustBench's
convention, and ours. Nothing is put in front of them; the protocol's mean and std are the
student's.

Feature taps: the families below get `stages` and a `stage_paths` map (bench/models/taps.py), so
feature methods work with a zoo teacher. Where the family allows it, the teacher's stage has the
student's spatial size (resnet9: 16x16, 8x8, 4x4):

    ResNet, PreActResNet (layer1..4: 32, 16, 8, 4)        stage1..3 = layer2, layer3, layer4
    DMPreActResNet (layer_0..3: 32, 16, 8, 4)             stage1..3 = layer_1, layer_2, layer_3
    WideResNet (block1..3: 32, 16, 8; final bn-relu)      stage1..3 = block1, block2, relu
    DMWideResNet (layer.0..2: 32, 16, 8; final bn-act)    stage1..3 = layer.0, layer.1, relu

A WideResNet has three groups and no 4x4 stage: its three stages are its three groups in order
(the last one after the final batch norm and activation, the features the classifier reads), each
at twice the student's size; hint losses pool them to the student's size (methods/losses.py).
Other families (ResNeXt, XCiT, ...) declare no stages: a feature method then fails with a message
naming the teacher (bench/train/engine.py: build_method).
"""

from __future__ import annotations

import difflib
from types import ModuleType

from torch import nn

from bench.errors import UsageError
from bench.models.registry import register_arch
from bench.protocols import Protocol

ZOO_ARCH = "robustbench-zoo"
DATASET, THREAT_MODEL = "cifar10", "Linf"  # the zoo entries kdbench's protocols can use
STAGES = ("stage1", "stage2", "stage3")


def _robustbench() -> ModuleType:
    from bench.robustbench_compat import import_robustbench  # slow (seconds): only when needed
    return import_robustbench()


def zoo_models() -> dict:
    """RobustBench's CIFAR-10 L-inf entries: name -> {'model': constructor, 'gdrive_id': ...}."""
    _robustbench()
    from robustbench.model_zoo.cifar10 import cifar_10_models
    from robustbench.model_zoo.enums import ThreatModel
    return cifar_10_models[ThreatModel.Linf]


def zoo_entry(name: str) -> dict:
    """The zoo's entry for `name`, when kdbench can use it as a teacher (one network, one
    checkpoint file); a UsageError naming close matches otherwise."""
    models = zoo_models()
    if name not in models:
        close = difflib.get_close_matches(name, list(models), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"robustbench:{name} is not in RobustBench's {DATASET} {THREAT_MODEL} "
                         f"model zoo{hint} (robustbench.model_zoo.cifar10 lists "
                         f"{len(models)} entries)")
    gdrive_id = models[name]["gdrive_id"]
    if not isinstance(gdrive_id, str):
        kind = "an ensemble of several checkpoints" if gdrive_id else "a timm model"
        raise UsageError(f"robustbench:{name} is {kind}; kdbench takes teachers that are one "
                         "network in one checkpoint file")
    return models[name]


def _stage_paths(model: nn.Module) -> dict[str, str]:
    from robustbench.model_zoo.architectures.dm_wide_resnet import DMPreActResNet, DMWideResNet
    from robustbench.model_zoo.architectures.resnet import PreActResNet, ResNet
    from robustbench.model_zoo.architectures.wide_resnet import WideResNet
    families = [((ResNet, PreActResNet), ("layer2", "layer3", "layer4")),
                ((DMPreActResNet,), ("layer_1", "layer_2", "layer_3")),
                ((WideResNet,), ("block1", "block2", "relu")),
                ((DMWideResNet,), ("layer.0", "layer.1", "relu"))]
    for classes, paths in families:
        if isinstance(model, classes):
            return dict(zip(STAGES, paths))
    return {}


def zoo_network(name: str) -> nn.Module:
    """A fresh network of the zoo entry `name` (random weights), with its feature stages."""
    model = zoo_entry(name)["model"]()
    paths = _stage_paths(model)
    # Plain attributes, not submodules: the state dict keeps RobustBench's exact keys.
    model.stage_paths = paths
    model.stages = tuple(paths)
    model.zoo_name = name
    return model


def _build(p: Protocol) -> nn.Module:
    if p.teacher_source is None:
        raise UsageError(f"protocol {p.name!r} has no zoo teacher: architecture {ZOO_ARCH!r} "
                         "is built from one (kdbench run --teacher robustbench:NAME)")
    return zoo_network(p.teacher_source.name)


register_arch(ZOO_ARCH, _build)
