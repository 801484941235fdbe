"""`kdbench export-robustbench`: a student in RobustBench's format, checked against what
RobustBench's own files and code expect (its repository's model_info entries, its ModelInfo, its
list_available_models and load_model)."""

import contextlib
import io
import json

import pytest
import torch

from bench.checkpoints import load_weights
from bench.errors import UsageError
from bench.models import build_model
from bench.protocols import get_protocol
from bench.records import read_record
from bench.robustbench_compat import import_robustbench
from bench.robustbench_export import export, register_exported

# The fields of model_info/cifar10/Linf/Sehwag2021Proxy_R18.json in RobustBench's repository
# (github.com/RobustBench/robustbench, commit 78fcc9e), in its order, with its value types.
ROBUSTBENCH_FIELDS = [("link", str), ("name", str), ("authors", str), ("additional_data", bool),
                      ("number_forward_passes", int), ("dataset", str), ("venue", str),
                      ("architecture", str), ("eps", str), ("clean_acc", str), ("reported", str),
                      ("autoattack_acc", str), ("footnote", str), ("unreliable", bool)]

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # one --smoke --full CIFAR-10 run


@pytest.fixture(scope="module")
def exported(exported_student):
    import_robustbench()
    ns = exported_student
    ns.info = ns.out / "model_info" / "cifar10" / "Linf" / f"{ns.name}.json"
    ns.ckpt = ns.out / "models" / "cifar10" / "Linf" / f"{ns.name}.pt"
    return ns


def test_model_info_has_the_fields_of_robustbench_entries(exported):
    info = json.loads(exported.info.read_text())
    assert [(k, type(v)) for k, v in info.items()] == ROBUSTBENCH_FIELDS
    rec = read_record(exported.record)
    assert float(info["clean_acc"]) == pytest.approx(rec.metrics.clean_acc, abs=0.005)
    assert float(info["autoattack_acc"]) == pytest.approx(rec.metrics.autoattack_acc, abs=0.005)
    assert info["eps"] == "8/255" and info["dataset"] == "cifar10"
    assert info["unreliable"] is rec.metrics.unreliable
    assert info["name"] == "A test" and info["authors"] == "kdbench tests"
    # robustbench's own dataclass of these files takes every field but `unreliable`, which its
    # repository's files carry and the installed ModelInfo (1.1.1) predates
    from robustbench.utils import ModelInfo
    ModelInfo(**{k: v for k, v in info.items() if k != "unreliable"})


def test_robustbench_lists_the_exported_model(exported, monkeypatch):
    from robustbench.utils import list_available_models
    register_exported(exported.out)
    monkeypatch.chdir(exported.out)  # robustbench reads ./model_info
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        list_available_models("cifar10", "Linf")
    rows = [line for line in buf.getvalue().splitlines() if exported.name in line]
    rec = read_record(exported.record)
    assert len(rows) == 1 and f"{rec.metrics.clean_acc:.2f}%" in rows[0]


def test_load_model_reads_the_export_back_with_identical_logits(exported):
    from robustbench.utils import load_model
    register_exported(exported.out)
    theirs = load_model(exported.name, model_dir=str(exported.out / "models"),
                        dataset="cifar10", threat_model="Linf")
    rec = read_record(exported.record)
    ours = build_model(rec.arch, get_protocol("cifar10").for_smoke())
    ours.load_state_dict(load_weights(exported.results / rec.checkpoint.file)[0])
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(theirs(x), ours.eval()(x))
    assert exported.ckpt.read_bytes() == (exported.results / rec.checkpoint.file).read_bytes()


def test_export_refuses_records_without_autoattack_and_smoke_records(exported, tmp_path):
    results = tmp_path / "results"
    d = json.loads(exported.record.read_text())
    d["metrics"].update(autoattack_acc=None)
    d["metrics"]["attacks"]["autoattack"] = None
    if d["metrics"].get("evidence"):  # the bits go with the accuracy they back
        d["metrics"]["evidence"]["autoattack"] = None
    rec_path = results / "cifar10" / "baseline" / "seed-0.json"
    rec_path.parent.mkdir(parents=True)
    rec_path.write_text(json.dumps(d))
    ckpt = read_record(exported.record).checkpoint.file
    (results / ckpt).write_bytes((exported.results / ckpt).read_bytes())
    with pytest.raises(UsageError, match=r"lacks AutoAttack \(--full\); run: kdbench run "
                                         r"--protocol cifar10 --methods baseline --seeds 0 --full"):
        export("cifar10", "baseline", results, tmp_path / "out", allow_smoke=True)
    with pytest.raises(UsageError, match=r"a --smoke record, never a result to publish"):
        export("cifar10", "baseline", exported.results, tmp_path / "out")
    with pytest.raises(UsageError, match="Standard is a model of RobustBench's own zoo"):
        export("cifar10", "baseline", exported.results, tmp_path / "out", allow_smoke=True,
               name="Standard")
    assert not (tmp_path / "out").exists()  # nothing written
