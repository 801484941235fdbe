"""The leaderboard's data shaping, without Streamlit: which records count, aggregation, ranks,
the Pareto frontier, CSV, and the import boundary (records only, never method code)."""

import csv
import io
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench.records import Record, read_record
from support import REPO
from leaderboard import data, tables
from leaderboard.metrics import METRICS, aggregate, rank, select
from leaderboard.pareto import dominates, frontier
from support import MNIST5K_HASH, make_record, standard_results, write


# -- Pareto frontier ---------------------------------------------------------------------------
def test_frontier_of_a_known_set():
    #            0          1          2          3           4          5
    points = [(1.0, 50), (2.0, 70), (2.0, 60), (3.0, 65), (4.0, 90), (0.5, 10)]
    assert frontier(points) == [5, 0, 1, 4]  # cheapest first; 2 and 3 are dominated by 1


def test_frontier_keeps_identical_points_and_ignores_missing_ones():
    points = [(1.0, 50.0), (1.0, 50.0), (float("nan"), 99.0), (None, 99.0), (2.0, 40.0)]
    assert frontier(points) == [0, 1]


def test_frontier_equals_brute_force_on_random_points_with_ties():
    rng = random.Random(0)
    for _ in range(200):
        pts = [(rng.choice([0.1, 0.2, 0.3, 0.5, 1.0]), rng.choice([10.0, 20.0, 30.0, 40.0]))
               for _ in range(rng.randint(1, 12))]
        expected = {i for i, p in enumerate(pts) if not any(dominates(q, p) for q in pts)}
        got = frontier(pts)
        assert set(got) == expected, pts
        assert [pts[i][0] for i in got] == sorted(pts[i][0] for i in got)


# -- aggregation -------------------------------------------------------------------------------
def _records(results: Path) -> list[Record]:
    return [read_record(p) for p in sorted(results.rglob("seed-*.json"))]


def test_aggregate_is_mean_and_sample_std_over_seeds(record_template, tmp_path):
    rows = {r.method: r for r in aggregate(_records(standard_results(record_template, tmp_path)))}
    assert list(rows) == ["teacher", "baseline", "robustkd", "vanilla"]  # references first
    v = rows["vanilla"]
    assert v.seeds == (0, 1, 2) and v.family == "logit" and not v.is_reference
    assert v.stats["clean"].mean == pytest.approx(statistics.fmean([96.0, 96.5, 97.0]))
    assert v.stats["pgd"].std == pytest.approx(statistics.stdev([12.0, 14.0, 16.0]))
    assert rows["teacher"].stats["clean"].std == 0.0 and rows["teacher"].is_reference
    assert v.stats["autoattack"] is None and v.counts["autoattack"] == 0  # not run: no number
    assert v.stats["gpu_ms"] is None  # no GPU on the machine that made the records
    assert v.unreliable is None and v.verified is None and v.flags == ""


def test_optional_metrics_flags_and_reasons(record_template, tmp_path):
    checks = [{"name": "pgd_not_weaker_than_fgsm", "passed": False, "detail": "PGD 40 > FGSM 30"}]
    write(tmp_path, make_record(record_template, "m", 0, autoattack_acc=20.0,
                                eps_curve=[{"eps": "8/255", "acc": 25.0}]))
    write(tmp_path, make_record(record_template, "m", 1, sanity_checks=checks, unreliable=True,
                                unreliable_reasons=["PGD weaker than FGSM"]))
    (row,) = aggregate(_records(tmp_path))
    assert row.stats["autoattack"].values == (20.0,) and row.counts["autoattack"] == 1
    assert tables.fmt_cell(row, "autoattack") == "20.0 (1/2 seeds)"
    assert row.unreliable is True and row.unreliable_reasons == ("PGD weaker than FGSM",)
    assert row.flags == "⚠ unreliable (1/2 seeds)"
    assert tables.eps_curves([row]).to_dict("records")[0]["eps_value"] == pytest.approx(8 / 255)


def test_verification_flags_a_row(record_template):
    base = make_record(record_template, "m", 0)
    checked = {"clean_acc": 90.0, "pgd_acc": 30.0, "tolerance": 0.5,
               "verified_at": "2026-12-01T00:00:00Z", "kdbench": "0.1.0", "device": "cpu"}
    good = Record.model_validate({**base, "verification": {"ok": True, **checked}})
    bad = Record.model_validate({**base, "seed": 1, "verification": {"ok": False, **checked}})
    assert aggregate([Record.model_validate(base)])[0].verified is None
    assert aggregate([good])[0].flags == "✓ verified (1/1)"
    assert aggregate([good, bad])[0].verified is False  # one failed seed fails the row
    rows = aggregate([good, Record.model_validate({**base, "method": "other"})])
    assert [r.method for r in select(rows, {"logit"}, only_verified=True)] == ["m"]


def test_rank_skips_reference_rows_and_follows_the_metric_direction(record_template, tmp_path):
    rows = aggregate(_records(standard_results(record_template, tmp_path)))
    assert rank(rows, "pgd") == {"robustkd": 1, "vanilla": 2}
    assert rank(rows, "clean") == {"vanilla": 1, "robustkd": 2}
    assert rank(rows, "cpu_ms")["robustkd"] == 1  # lower latency is better
    assert rank(rows, "autoattack") == {}  # nobody has it: nobody is ranked by it
    numbers, text = tables.leaderboard(rows, "pgd")
    assert list(numbers["method"]) == ["robustkd", "vanilla", "teacher", "baseline"]
    assert list(text["rank"]) == ["1", "2", "—", "—"]
    assert numbers["autoattack"].isna().all() and set(text["autoattack"]) == {"—"}


def test_filters(record_template, tmp_path):
    write(tmp_path, make_record(record_template, "flaky", 0, unreliable=True,
                                sanity_checks=[{"name": "x", "passed": False, "detail": "y"}]))
    rows = aggregate(_records(standard_results(record_template, tmp_path)))
    names = lambda rs: sorted(r.method for r in rs)  # noqa: E731
    everything = {r.family for r in rows}
    assert names(select(rows, everything)) == names(rows)
    assert names(select(rows, {"logit"})) == ["flaky", "vanilla"]
    assert "flaky" not in names(select(rows, everything, hide_unreliable=True))
    assert names(select(rows, everything, only_verified=True)) == ["baseline", "teacher"]


def test_csv_has_mean_std_and_count_and_leaves_missing_values_empty(record_template, tmp_path):
    rows = aggregate(_records(standard_results(record_template, tmp_path)))
    out = list(csv.DictReader(io.StringIO(tables.csv(rows, "pgd", "mnist5k", MNIST5K_HASH))))
    assert [r["method"] for r in out] == ["robustkd", "vanilla", "baseline", "teacher"]
    v = out[1]
    assert float(v["clean_mean"]) == pytest.approx(96.5) and v["clean_n"] == "3"
    assert float(v["pgd_std"]) == pytest.approx(2.0) and v["rank_by_pgd"] == "2"
    assert v["autoattack_mean"] == "" and v["autoattack_n"] == "0" and v["gpu_ms_mean"] == ""
    assert out[2]["rank_by_pgd"] == ""  # reference rows are unranked


@pytest.mark.parametrize("key", [m.key for m in METRICS])
def test_absent_values_read_as_a_dash_never_zero(key):
    assert tables.fmt_stat(key, None) == "—"


# -- reading a results directory -----------------------------------------------------------------
def test_load_groups_by_protocol_version_and_explains_every_skipped_file(record_template,
                                                                          tmp_path):
    res = standard_results(record_template, tmp_path / "results")
    # a seed left over from an older protocol definition (the path has no room for the hash)
    write(res, make_record(record_template, "vanilla", 5, protocol_hash="0" * 16))
    # a nested copy of it: same protocol version, method and seed
    write(res / "old", make_record(record_template, "vanilla", 5, protocol_hash="0" * 16))
    write(res, make_record(record_template, "vanilla", 0, protocol="cifar100",
                           protocol_hash="1" * 16))
    write(res, make_record(record_template, "quick", 0, smoke=True))
    (res / "mnist5k" / "broken").mkdir()
    (res / "mnist5k" / "broken" / "seed-0.json").write_text('{"schema_version": 1,')
    bad = make_record(record_template, "invalid", 0)
    bad["metrics"]["clean_acc"] = 140.0
    write(res, bad)
    moved = write(res, make_record(record_template, "elsewhere", 0))
    moved.rename(moved.parent / "seed-7.json")

    loaded = data.load(res)
    keys = loaded.protocols
    assert [(k.name, k.status) for k in keys] == [
        ("mnist5k", data.Status.REGISTERED), ("mnist5k", data.Status.OUTDATED),
        ("cifar100", data.Status.UNREGISTERED)]
    assert len(loaded.by_protocol[keys[0]]) == 10 and len(loaded.by_protocol[keys[1]]) == 1
    assert "outdated definition" in keys[1].label()
    reasons = {s.path: s.reason for s in loaded.errors}
    assert set(reasons) == {"mnist5k/broken/seed-0.json", "mnist5k/invalid/seed-0.json",
                            "mnist5k/elsewhere/seed-7.json", "old/mnist5k/vanilla/seed-5.json"}
    assert "not valid JSON" in reasons["mnist5k/broken/seed-0.json"]
    assert "metrics.clean_acc" in reasons["mnist5k/invalid/seed-0.json"]
    assert "must live at" in reasons["mnist5k/elsewhere/seed-7.json"]
    assert "mnist5k/vanilla/seed-5.json" in reasons["old/mnist5k/vanilla/seed-5.json"]
    assert [s.path for s in loaded.smoke] == ["mnist5k/quick/seed-0.json"]


def test_records_made_on_other_data_get_a_table_of_their_own(record_template, tmp_path):
    res = standard_results(record_template, tmp_path / "results")
    other = make_record(record_template, "vanilla", 3)
    other["provenance"]["data_fingerprint"] = "cifar10c-present"
    write(res, other)
    loaded = data.load(res)
    common = read_record(res / "mnist5k" / "vanilla" / "seed-0.json").provenance.data_fingerprint
    sizes = {k.data: len(recs) for k, recs in loaded.by_protocol.items()}
    assert sizes == {common: 10, "cifar10c-present": 1}
    assert all(r.provenance.data_fingerprint == k.data for k, recs in loaded.by_protocol.items()
               for r in recs)
    assert "data cifar10c" in next(k for k in loaded.protocols if k.data != common).label()
    alone = data.load(standard_results(record_template, tmp_path / "plain"))
    assert [k.data for k in alone.protocols] == [""]  # one data set: no mention of it


def test_missing_directory_and_fingerprint(record_template, tmp_path):
    loaded = data.load(tmp_path / "nope")
    assert not loaded.exists and not loaded.by_protocol and data.fingerprint(tmp_path / "nope") == ()
    path = write(tmp_path, make_record(record_template, "m", 0))
    before = data.fingerprint(tmp_path)
    assert data.fingerprint(tmp_path) == before  # stable when nothing changed
    path.write_text(json.dumps(make_record(record_template, "m", 0, clean=91.0)) + "\n")
    assert data.fingerprint(tmp_path) != before  # a rewritten record is read again


# -- the import boundary -------------------------------------------------------------------------
def test_the_leaderboard_never_imports_method_code_or_torch():
    code = ("import sys, leaderboard.data, leaderboard.metrics, leaderboard.tables, "
            "leaderboard.plots, leaderboard.views; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('methods', 'torch')); "
            "print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.integration
def test_leaderboard_command_rejects_a_bad_port_in_one_line(tmp_path):
    from support import kdbench
    proc = kdbench("leaderboard", "--results-dir", str(tmp_path), "--port", "0")
    assert proc.returncode == 2 and "--port must be between 1 and 65535" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mce_is_relative_to_the_baseline_of_the_same_seed(record_template, tmp_path):
    # baseline: clean error 10, corruption error 20 at every severity; method: 5 and 10.
    write(tmp_path, make_record(record_template, "baseline", 0, family="reference", clean=90.0,
                                noise=(80.0,) * 5))
    write(tmp_path, make_record(record_template, "m", 0, clean=95.0, noise=(90.0,) * 5))
    rows = {r.method: r for r in aggregate(_records(tmp_path))}
    # CE = 50/100; relative CE = (10-5)*5 / ((20-10)*5)
    assert rows["m"].stats["mce"].mean == pytest.approx(50.0)
    assert rows["m"].stats["rel_mce"].mean == pytest.approx(50.0)
    assert rows["baseline"].stats["mce"].mean == pytest.approx(100.0)
