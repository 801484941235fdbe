"""The model as it ships (bench/eval/deployment.py, bench/eval/onnx_export.py): ONNX export against
PyTorch's own logits, int8 size and accuracy, broken exports as errors in the record, transfer
and Square against the int8 ONNX Runtime session, the record section, `kdbench export`."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchattacks
from torch import nn

import methods
from attacks.adversarial import predict, robust_mask
from bench.data import load_split
from bench.eval.deployment import Deployment, balanced, max_abs_diff
from bench.eval.onnx_export import (GraphCache, OrtModel, calibration_images, export_program,
                                    quantize, session, signature, to_bytes)
from bench.eval.suite import CleanAccuracy, Corruptions, WhiteBoxAttacks, evaluate
from bench.models import ARCHS, build_model
from bench.progress import Reporter
from bench.protocols import PROTOCOLS, get_protocol
from bench.records import Deployment as DeploymentRecord
from bench.records import read_record
from bench.train.engine import build_method, train
from support import REPO, kdbench
from support import make_record, write

# Every architecture of every registered protocol, with a protocol that builds it.
ARCH_CASES = sorted({(arch, name) for name, make in PROTOCOLS.items()
                     for arch in (make().teacher_arch, make().student_arch)})


def _random_bn(model: nn.Module, seed: int = 1) -> nn.Module:
    """Batch-norm statistics away from (0, 1), so that folding them is tested, not skipped."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


@pytest.mark.parametrize("arch, protocol_name", [
    pytest.param(a, p, id=a) for a, p in dict(ARCH_CASES).items()])
def test_onnx_logits_equal_pytorch_for_every_registered_architecture(arch, protocol_name):
    # no architecture escapes this test but the zoo's: a RobustBench model is only ever a
    # teacher, never the deployed student, and which one depends on --teacher
    assert set(dict(ARCH_CASES)) == set(ARCHS) - {"robustbench-zoo"}
    p = get_protocol(protocol_name)
    torch.manual_seed(0)
    model = _random_bn(build_model(arch, p))
    program = export_program(model, p.input_shape)
    sess = session(to_bytes(program), threads=1)
    for batch in (1, 3):  # the batch axis is dynamic: not the export's example size (2)
        x = torch.rand(batch, *p.input_shape)
        got = sess.run(None, {"x": x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_the_architecture_graph_with_a_models_weights_is_its_direct_export(protocol):
    torch.manual_seed(0)
    model = _random_bn(build_model("cnn-student", protocol), seed=7)
    cache = GraphCache()
    fresh = lambda: build_model("cnn-student", protocol)  # noqa: E731
    shared, how = cache.onnx_bytes(model, "k", fresh, protocol.input_shape)
    direct = to_bytes(export_program(model, protocol.input_shape))
    assert how == "architecture"
    a, b = onnx.load_from_string(shared), onnx.load_from_string(direct)
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    weights = [sorted((tuple(i.dims), i.raw_data) for i in m.graph.initializer) for m in (a, b)]
    assert weights[0] == weights[1]  # the same tensors, batch norm folded the same way
    x = torch.rand(16, *protocol.input_shape).numpy()
    np.testing.assert_allclose(session(shared, 1).run(None, {"x": x})[0],
                               session(direct, 1).run(None, {"x": x})[0], atol=1e-6, rtol=0)


def test_a_model_whose_modules_differ_is_exported_on_its_own(protocol):
    cache = GraphCache()
    fresh = lambda: build_model("cnn-student", protocol)  # noqa: E731
    changed = build_model("cnn-student", protocol).eval()
    changed.stage2[2] = nn.Hardtanh(0.0, 6.0)  # a method swapped an activation
    hooked = build_model("cnn-student", protocol).eval()
    hooked.stage1.register_forward_hook(lambda m, i, o: o * 2)
    assert signature(changed) != signature(fresh()) and signature(hooked) is None
    for model in (changed, hooked):
        data, how = cache.onnx_bytes(model, "k", fresh, protocol.input_shape)
        assert how == "exported"
        x = torch.rand(4, *protocol.input_shape)
        assert max_abs_diff(OrtModel(session(data, 1)), model, x, 4)[0] < 1e-4


# -- a trained student ----------------------------------------------------------------------

def _small(protocol):
    """mnist5k with a few corruptions and a short PGD: the pipeline, in seconds."""
    return dataclasses.replace(
        protocol,
        eval=dataclasses.replace(protocol.eval, corruptions=("shot_noise", "fog"),
                                 pgd_steps=5, strong_attacks=()),
        deploy=dataclasses.replace(protocol.deploy, corruption_n=50, square_n=30,
                                   square_queries=30))


@pytest.fixture(scope="module")
def student(protocol, split):
    """The protocol's student after 3 epochs of cross-entropy, as the engine trains it."""
    spec = methods.discover()[0]["baseline"]
    torch.manual_seed(0)
    model = build_model(protocol.student_arch, protocol)
    method = build_method(spec.cls, spec.default_hparams(), protocol, model, None, split.x_train)
    train(model, method, dataclasses.replace(protocol.student_recipe, epochs=3), split.x_train,
          split.y_train, seed=0)
    return model.eval()


@pytest.mark.integration
def test_int8_is_under_half_the_fp32_size_and_keeps_clean_accuracy(protocol, split, student):
    fp32 = to_bytes(export_program(student, protocol.input_shape))
    int8 = quantize(fp32, calibration_images(split.x_train, 200, 0), protocol.deploy)
    assert len(int8) < len(fp32) / 2
    graph = onnx.load_from_string(int8).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}  # QDQ
    eager = 100 * (predict(student, split.x_test, 500) == split.y_test).float().mean().item()
    q = OrtModel(session(int8, 1))
    quantised = 100 * (predict(q, split.x_test, 500) == split.y_test).float().mean().item()
    assert eager > 80  # a trained student, not chance
    assert abs(quantised - eager) < 3.0


@pytest.mark.integration
def test_square_and_transfer_on_the_int8_session_are_per_example(protocol, split, student):
    fp32 = to_bytes(export_program(student, protocol.input_shape))
    q = OrtModel(session(quantize(fp32, calibration_images(split.x_train, 100, 0),
                                  protocol.deploy), 1))
    idx = balanced(split.y_test, 40, 10)
    assert torch.bincount(split.y_test[idx], minlength=10).tolist() == [4] * 10
    x, y, eps = split.x_test[idx], split.y_test[idx], protocol.eval.eps
    kept = torch.empty_like(x)
    torch.manual_seed(0)
    square = torchattacks.Square(q, norm="Linf", eps=eps, n_queries=30, seed=0)
    ok = robust_mask(q, square, x, y, 500, keep=kept)
    assert ok.shape == (40,) and ok.dtype == torch.bool
    # Each verdict is the int8 model's own answer on the example Square returned, in the ball.
    assert (kept - x).abs().max() <= eps + 1e-6 and kept.min() >= 0 and kept.max() <= 1
    assert torch.equal(predict(q, kept, 500) == y, ok)
    clean = predict(q, x, 500) == y
    assert not (ok & ~clean).any()  # robust only where right on the clean input
    # Transfer: the fp32 model's PGD examples, judged by the int8 model, one verdict each.
    adv = torchattacks.PGD(student, eps=eps, alpha=0.01, steps=10)(x, y)
    assert (predict(q, adv, 500) == y).shape == (40,)


@pytest.mark.integration
def test_the_deployment_section_of_a_trained_student(protocol, split, student):
    p = _small(protocol)
    idx = balanced(split.y_test, 300, 10)
    x, y = split.x_test[idx], split.y_test[idx]
    metrics = evaluate(student, p, x, y, "cpu", Reporter(quiet=True),
                       evaluators=(CleanAccuracy(), WhiteBoxAttacks(), Corruptions(),
                                   Deployment(p.student_arch, split.x_train)))
    d = DeploymentRecord.model_validate(metrics["deployment"])
    assert d.error is None and d.graph == "architecture" and d.logit_max_abs_diff < 1e-4
    assert d.clean.n == d.transfer.n == d.robust.n == 300
    assert d.clean.fp32 == metrics["clean_acc"] and d.transfer.fp32 == metrics["pgd_acc"]
    assert d.square.n == 30 and d.square_queries == 30
    assert d.corruptions.n == 50 * 2 * 1  # 50 images x 2 corruptions x 1 severity (MNIST-C)
    assert sorted(d.corruptions_int8) == ["fog", "shot_noise"]
    assert all(len(v) == 1 for v in d.corruptions_int8.values())
    # The fp32 side of the corruptions is the suite's own, on the same balanced subset.
    fp32 = [a for accs in metrics["corruptions"].values() for a in accs]
    assert d.corruptions.fp32 <= 100 and min(fp32) - 20 <= d.corruptions.fp32 <= max(fp32) + 20
    assert d.robust.int8 <= min(d.clean.int8, d.transfer.int8)
    assert d.fp32_bytes > 2 * d.int8_bytes
    assert d.int8.per_channel and d.int8.format == "QDQ"


# -- broken exports -------------------------------------------------------------------------

@torch.library.custom_op("kdbench_test::relu_twice", mutates_args=())
def _relu_twice(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_min(0) * 2


@_relu_twice.register_fake
def _(x):
    return torch.empty_like(x)


class CustomOp(nn.Module):
    """A method-side op the ONNX exporter has no translation for."""

    def forward(self, x):
        return _relu_twice(x)


class _Branchy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        if x.max().item() > 0:  # Python control flow on a tensor's value: nothing to trace
            return x.clamp_min(0)
        return x

    @staticmethod
    def backward(ctx, g):
        return g


class DataDependent(nn.Module):
    """A custom autograd Function whose forward branches on the data."""

    def forward(self, x):
        return _Branchy.apply(x)


@pytest.mark.parametrize("module, message", [
    (CustomOp, "No ONNX function found for <OpOverload(op='kdbench_test.relu_twice'"),
    (DataDependent, "data-dependent expression"),
])
def test_a_model_onnx_cannot_express_is_an_error_in_the_record(protocol, split, module,
                                                               message):
    model = build_model("cnn-student", protocol).eval()
    model.stage3[2] = module()
    p = _small(protocol)
    idx = balanced(split.y_test, 100, 10)
    x, y = split.x_test[idx], split.y_test[idx]
    metrics = evaluate(model, p, x, y, "cpu", Reporter(quiet=True),
                       evaluators=(CleanAccuracy(), Deployment(p.student_arch, split.x_train)))
    assert "clean_acc" in metrics  # the rest of the evaluation stands
    d = DeploymentRecord.model_validate(metrics["deployment"])
    assert d.error and "\n" not in d.error and d.int8_bytes is None and d.clean is None
    assert d.error.startswith("ONNX export failed") and message in d.error


class WrongGraph(GraphCache):
    """Hands out another model's graph (what a faulty shortcut or exporter would make), except
    for a direct export."""

    def __init__(self, other: bytes, how: str):
        super().__init__()
        self.other, self.how = other, how

    def onnx_bytes(self, model, key, fresh, input_shape, direct=False):
        if direct:
            return super().onnx_bytes(model, key, fresh, input_shape, direct=True)
        return self.other, self.how


def test_logits_that_differ_are_an_error_or_a_direct_export(protocol, split):
    torch.manual_seed(1)
    other = to_bytes(export_program(build_model("cnn-student", protocol).eval(),
                                    protocol.input_shape))
    torch.manual_seed(2)
    model = build_model("cnn-student", protocol).eval()
    p = _small(protocol)
    idx = balanced(split.y_test, 100, 10)
    for how in ("exported", "architecture"):
        deploy = Deployment(p.student_arch, split.x_train, graphs=WrongGraph(other, how))
        metrics = evaluate(model, p, split.x_test[idx], split.y_test[idx], "cpu",
                           Reporter(quiet=True), evaluators=(CleanAccuracy(), deploy))
        d = DeploymentRecord.model_validate(metrics["deployment"])
        if how == "exported":  # nothing else to try: the record says so, with the numbers
            assert d.error.startswith("ONNX Runtime's logits differ from PyTorch's by up to")
            assert d.logit_max_abs_diff > 1e-4 * max(1.0, d.logit_scale)
            assert d.fp32_bytes == len(other) and d.int8_bytes is None and d.clean is None
        else:  # the architecture's graph failed the check: the model itself is exported
            assert d.error is None and d.graph == "exported" and d.logit_max_abs_diff < 1e-4


def test_the_record_section_rejects_inconsistent_numbers():
    base = {"exporter": "x", "logit_tolerance": 1e-4, "wall_s": 1.0, "error": "boom"}
    assert DeploymentRecord.model_validate(base).clean is None  # an error, nothing measured
    with pytest.raises(ValueError, match="no error"):
        DeploymentRecord.model_validate({**base, "error": None, "logit_max_abs_diff": 0.1})
    with pytest.raises(ValueError, match="no error"):  # 1e-4 per unit of the largest logit
        DeploymentRecord.model_validate({**base, "error": None, "logit_max_abs_diff": 3e-3,
                                         "logit_scale": 20.0})
    with pytest.raises(ValueError, match="sizes and accuracies"):
        DeploymentRecord.model_validate({**base, "error": None, "logit_max_abs_diff": 0.0})
    acc = {"n": 10, "fp32": 50.0, "int8": 40.0}
    with pytest.raises(ValueError, match="worst case"):
        DeploymentRecord.model_validate({**base, "clean": acc,
                                         "robust": {**acc, "int8": 60.0}})


def test_smoke_shrinks_the_deployment_budget(protocol):
    smoke = protocol.for_smoke().deploy
    assert smoke.square_queries <= protocol.deploy.square_queries
    assert smoke.corruption_n <= protocol.deploy.corruption_n
    assert dataclasses.replace(protocol, deploy=dataclasses.replace(
        protocol.deploy, square_queries=7)).hash != protocol.hash


# -- runs and the export command ----------------------------------------------------------

PLUGIN = '''
import torch
from torch import nn
from methods.api import Method, register_method


@torch.library.custom_op("kdb_ext_op::relu_twice", mutates_args=())
def relu_twice(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_min(0) * 2


@relu_twice.register_fake
def _(x):
    return torch.empty_like(x)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return grad * 2 * (x > 0)


relu_twice.register_autograd(_backward, setup_context=_setup)


class Twice(nn.Module):
    def forward(self, x):
        return relu_twice(x)


@register_method
class M(Method):
    name, description, family = "ext_custom_op", "puts a custom op into the student", "logit"
    uses_teacher = False

    def perturb(self, batch, student, teacher):
        student.stage3[2] = Twice()  # a method-side module ONNX cannot express
        return batch.x

    def loss(self, step):
        return torch.nn.functional.cross_entropy(step.student().logits, step.batch.y)
'''


@pytest.mark.integration
@pytest.mark.slow
def test_a_method_with_a_custom_op_gets_a_record_with_the_error(tmp_path):
    site = tmp_path / "site"
    (site / "kdb_ext_op").mkdir(parents=True)
    (site / "kdb_ext_op" / "__init__.py").write_text(PLUGIN)
    info = site / "kdb_ext_op-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kdb-ext-op\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kdbench.methods]\next_custom_op = kdb_ext_op:M\n")
    run = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--smoke", "-q", "--methods",
                          "baseline,ext_custom_op", "--results-dir", str(tmp_path / "r"),
                          "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(site)}, timeout=600)
    assert run.returncode == 0, run.stderr  # the run went on
    bad = read_record(tmp_path / "r" / "mnist5k" / "ext_custom_op" / "seed-0.json")
    assert "ONNX export failed" in bad.metrics.deployment.error
    assert "kdb_ext_op.relu_twice" in bad.metrics.deployment.error
    assert bad.metrics.deployment.latency is None and bad.metrics.clean_acc is not None
    good = read_record(tmp_path / "r" / "mnist5k" / "baseline" / "seed-0.json")
    assert good.metrics.deployment.error is None and good.metrics.deployment.int8_bytes


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    """`kdbench run --smoke --methods baseline`: its results directory."""
    root = tmp_path_factory.mktemp("deploy-smoke")
    made = kdbench("run", "--smoke", "-q", "--methods", "baseline", "--results-dir",
                   str(root / "results"), "--cache-dir", str(root / "cache"))
    assert made.returncode == 0, made.stderr
    return root / "results"


@pytest.mark.integration
@pytest.mark.slow
def test_kdbench_export_round_trips(tmp_path, baseline_run, smoke_protocol):
    split = load_split(smoke_protocol)
    results = tmp_path / "results"
    shutil.copytree(baseline_run, results)  # the checkpoint is tampered with below
    rec = read_record(results / "mnist5k" / "baseline" / "seed-0.json")
    fp32, int8 = tmp_path / "student.onnx", tmp_path / "student-int8.onnx"
    for path, extra in ((fp32, []), (int8, ["--int8"])):
        proc = kdbench("export", "--method", "baseline", "--seed", "0", "--results-dir",
                       str(results), "-o", str(path), *extra)
        assert proc.returncode == 0, proc.stderr
        assert f"wrote {path}" in proc.stdout and "latency" in proc.stdout
        onnx.checker.check_model(onnx.load(path))
    # The written file is the record's model: its logits are the checkpoint's.
    from bench.checkpoints import load_weights
    model = build_model("cnn-student", smoke_protocol)
    model.load_state_dict(load_weights(results / rec.checkpoint.file)[0])
    x = split.x_test[:64]
    with torch.no_grad():
        want = model.eval()(x).numpy()
    got = ort.InferenceSession(str(fp32)).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert int8.stat().st_size < fp32.stat().st_size / 2
    assert rec.metrics.deployment.int8_bytes == int8.stat().st_size  # what the run measured
    # The printed accuracy is the written int8 model's on the protocol's test examples.
    n = len(split.x_test)
    q = ort.InferenceSession(str(int8)).run(None, {"x": split.x_test[:n].numpy()})[0]
    acc = 100 * float((q.argmax(1) == split.y_test[:n].numpy()).mean())
    assert f"accuracy {acc:.2f}% on the first {n} test examples" in proc.stdout
    # A checkpoint that is not the record's is refused in one line.
    ckpt = results / rec.checkpoint.file
    ckpt.write_bytes(ckpt.read_bytes() + b"x")
    bad = kdbench("export", "--method", "baseline", "--seed", "0", "--results-dir", str(results),
                  "-o", str(tmp_path / "no.onnx"))
    assert bad.returncode == 2 and "sha256" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "no.onnx").exists()


# -- the leaderboard ------------------------------------------------------------------------

def _deployed(template: dict, method: str, seed: int, clean: tuple[float, float],
              robust: tuple[float, float], int8_ms: float, **kw) -> dict:
    """A record whose deployment section says: clean (fp32, int8), robust (fp32, int8)."""
    d = make_record(template, method, seed, clean=clean[0], pgd=min(clean[0], 30.0), **kw)
    dep = d["metrics"]["deployment"]
    dep.update(clean={"n": 200, "fp32": clean[0], "int8": clean[1]},
               transfer={"n": 200, "fp32": d["metrics"]["pgd_acc"], "int8": robust[1]},
               robust={"n": 200, "fp32": robust[0], "int8": robust[1]}, error=None)
    dep["latency"]["onnx_int8"]["timings"][0]["median_ms"] = int8_ms
    return d


@pytest.mark.integration
@pytest.mark.slow  # the smoke run it reads
def test_the_leaderboard_aggregates_ranks_and_shows_deployment(monkeypatch, baseline_run,
                                                               tmp_path):
    from streamlit.testing.v1 import AppTest

    from leaderboard.data import RESULTS_DIR_ENV, load
    from leaderboard.metrics import aggregate, rank
    from leaderboard.tables import MISSING, fmt_cell
    template = json.loads((baseline_run / "mnist5k" / "baseline" / "seed-0.json").read_text())
    assert template["metrics"]["deployment"]["latency"] is not None
    results = tmp_path / "results"
    for seed, (c8, r8) in enumerate(((88.0, 20.0), (86.0, 24.0))):
        write(results, _deployed(template, "robustkd", seed, (90.0, c8), (25.0, r8), 0.4))
    write(results, _deployed(template, "vanilla", 0, (95.0, 94.0), (10.0, 8.0), 0.3))
    old = make_record(template, "old", 0)
    old["metrics"].pop("deployment")  # a record made before the deployment section existed
    write(results, old)
    rows = {r.method: r for r in aggregate(next(iter(load(results).by_protocol.values())))}
    robustkd = rows["robustkd"]
    assert robustkd.stats["int8_clean"].mean == pytest.approx(87.0)
    assert robustkd.stats["drop_clean"].values == pytest.approx((2.0, 4.0))
    assert robustkd.stats["int8_robust"].mean == pytest.approx(22.0)
    assert robustkd.stats["drop_robust"].mean == pytest.approx(3.0)
    assert rows["old"].stats["int8_robust"] is None and fmt_cell(rows["old"], "int8_ms") == MISSING
    assert rank(list(rows.values()), "int8_robust") == {"robustkd": 1, "vanilla": 2}
    assert rank(list(rows.values()), "int8_ms") == {"vanilla": 1, "robustkd": 2}
    monkeypatch.setenv(RESULTS_DIR_ENV, str(results))
    at = AppTest.from_file(str(REPO / "leaderboard" / "app.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    tab = next(t for t in at.tabs if t.label == "Deployment")
    df = tab.dataframe[0].value
    assert list(df["method"][:2]) == ["robustkd", "vanilla"]  # by int8 robust %, by default
    assert dict(zip(df["method"], df["int8_clean"])) == pytest.approx(
        {"robustkd": 87.0, "vanilla": 94.0, "old": float("nan")}, nan_ok=True)
    assert tab.get("vega_lite_chart")  # the Pareto plots
    at.sidebar.selectbox[1].set_value("int8_ms").run()
    df = next(t for t in at.tabs if t.label == "Deployment").dataframe[0].value
    assert list(df["method"][:2]) == ["vanilla", "robustkd"]  # ranked by int8 latency
