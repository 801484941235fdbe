"""The model zoo: teacher and student architectures by name, and feature taps.

    from bench.models import build_model, count_params, ARCHS

`registry` (ARCHS, `build_model`, `register_arch`, `arch_source_files`), one module per family
(`convnet` for the MNIST protocols, `resnet9` for CIFAR-10, `zoo` for RobustBench's model zoo
teachers, with `zoo_checkpoint` reading their weights), `normalize` (inputs stay in [0, 1],
normalised inside every model) and `taps` (forward-hook feature taps).
"""

from bench.models.normalize import Normalize
from bench.models.registry import ARCHS, arch_source_files, build_model, count_params, register_arch
from bench.models.taps import Outputs, TappedModel, feature_shapes, tapped
from bench.models import convnet, resnet9, zoo  # noqa: F401  (each registers its architectures)

__all__ = ["ARCHS", "Normalize", "Outputs", "TappedModel", "arch_source_files", "build_model",
           "count_params", "feature_shapes", "register_arch", "tapped"]
