"""The whole pipeline, as a user runs it: `kdbench run --smoke`, then validate what it wrote."""

from bench.records import read_record
from conftest import kdbench


def test_smoke_run_writes_a_valid_record_per_job(smoke_run):
    root, proc = smoke_run
    assert proc.returncode == 0, proc.stderr
    results = root / "results" / "mnist5k"
    files = sorted(p.relative_to(results).as_posix() for p in results.rglob("*.json"))
    expected = ["adaad", "adversarial", "ard", "baseline", "defensive", "fitnet",
                "hierarchical", "iad", "pgd_at", "pointwise", "teacher", "trades", "vanilla"]
    assert files == [f"{m}/seed-0.json" for m in expected]
    check = kdbench("validate", "--allow-smoke", str(root / "results"))
    assert check.returncode == 0, check.stderr
    for name in expected:
        rec = read_record(results / name / "seed-0.json")
        assert rec.smoke and rec.training.epochs == 2
        assert rec.metrics.efficiency.gpu is None and rec.metrics.efficiency.gpu_absent_reason
        assert rec.provenance.torch.startswith("2.14")
    assert read_record(results / "vanilla" / "seed-0.json").hparams == {"T": 4.0, "alpha": 0.9}
    # summary table on stdout, one row per method
    for name in expected:
        assert name in proc.stdout


def test_smoke_records_never_land_in_the_leaderboard(smoke_run):
    root, _ = smoke_run
    check = kdbench("validate", str(root / "results"))
    assert check.returncode == 1
    assert "never a leaderboard result" in check.stderr


def test_second_run_reuses_the_cached_teacher(smoke_run):
    root, first = smoke_run
    assert "teacher: training" in first.stderr
    again = kdbench("run", "--smoke", "-q", "--methods", "teacher", "--results-dir",
                    str(root / "again"), "--cache-dir", str(root / "cache"))
    assert again.returncode == 0, again.stderr
    assert "teacher: loaded from cache" in again.stderr
    a = read_record(root / "results" / "mnist5k" / "teacher" / "seed-0.json")
    b = read_record(root / "again" / "mnist5k" / "teacher" / "seed-0.json")
    assert a.metrics.clean_acc == b.metrics.clean_acc and a.metrics.pgd_acc == b.metrics.pgd_acc


def test_user_mistakes_get_one_line_and_exit_2(tmp_path):
    cases = [
        (["run", "--methods", "nope"], "unknown method 'nope'; available: teacher, baseline"),
        (["run", "--protocol", "cifar100"], "unknown protocol 'cifar100'; available: cifar10, cifar10-robust, mnist5k, mnist5k-robust"),
        (["run", "--seeds", "0,x"], "--seeds takes non-negative integers"),
        (["run", "--seeds", "1,1"], "distinct non-negative"),
        (["validate", str(tmp_path / "missing")], "no such file or directory"),
    ]
    for args, message in cases:
        proc = kdbench(*args, "--results-dir", str(tmp_path)) if args[0] == "run" else kdbench(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert not any(tmp_path.rglob("*.json"))


def test_methods_and_protocols_are_listed():
    methods = kdbench("methods")
    assert methods.returncode == 0
    assert "vanilla" in methods.stdout and "Hinton" in methods.stdout
    protocols = kdbench("protocols")
    assert protocols.returncode == 0 and "mnist5k" in protocols.stdout
