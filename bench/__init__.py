"""kdbench: a robustness benchmark for knowledge-distillation methods.

Data flows one way: protocol -> job -> train -> evaluate -> record -> leaderboard.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kdbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

import logging as _logging

# torch.utils.benchmark imports cpp_extension, which warns about a missing CUDA toolkit on every
# CPU-only machine; that is expected here and says nothing about the benchmark.
_logging.getLogger("torch.utils.cpp_extension").setLevel(_logging.ERROR)
