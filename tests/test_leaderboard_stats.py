"""Intervals, rank ranges and paired comparisons where users read them: the leaderboard app (its
table, note and Compare tab), its CSV, `kdbench show` and `kdbench compare`. Records are built by
hand (tests/support.py) with per-example evidence."""

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bench import report
from bench.records import Record, read_record
from bench.records.significance import table_ranges
from leaderboard import comparison, tables
from leaderboard.data import RESULTS_DIR_ENV
from leaderboard.metrics import aggregate, rank_ranges
from support import MNIST5K, REPO, kdbench, model_record, write_record, tab

APP = str(REPO / "leaderboard" / "app.py")
# method -> (clean, FGSM, PGD, noise) around which its seeds scatter
METHODS = {"strong": (95.0, 85.0, 80.0, 90.0), "strong2": (95.0, 85.0, 80.0, 89.0),
           "weak": (96.0, 50.0, 15.0, 70.0)}


def _results(root: Path, seeds=range(3)) -> Path:
    rng = np.random.default_rng(0)
    for seed in seeds:
        for method, (c, f, p, nz) in METHODS.items():
            jitter = rng.normal(0, 1.0)
            write_record(root, model_record(method, seed, {"clean": c + jitter, "fgsm": f + jitter,
                                                           "pgd": p + 2 * jitter, "noise": nz},
                                            rng))
        write_record(root, model_record("baseline", seed, {"clean": 95.0, "fgsm": 40.0,
                                                           "pgd": 3.0, "noise": 60.0},
                                        rng, family="reference"))
    return root


def _without_evidence(root: Path, method: str) -> None:
    """Rewrite a method's records as schema-1 records, made before evidence was stored."""
    for f in (root / "mnist5k" / method).glob("seed-*.json"):
        d = read_record(f).model_dump(mode="json")
        d["metrics"].pop("evidence")
        for key in ("job_key", "harness_version", "arch", "sources", "teacher_key"):
            d.pop(key)
        d["schema_version"] = 1
        write_record(root, d)


def _records(root: Path) -> list[Record]:
    return [read_record(f) for f in sorted(root.rglob("seed-*.json"))]


@pytest.fixture
def results(tmp_path) -> Path:
    return _results(tmp_path / "results")


def run_app(monkeypatch, results: Path) -> AppTest:
    monkeypatch.setenv(RESULTS_DIR_ENV, str(results))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# -- one implementation, three places ------------------------------------------------------------
def _show_column(t, title: str) -> dict[str, str]:
    cols = {c.header: list(c._cells) for c in t.columns}
    return dict(zip((m.rstrip(" †") for m in cols["method"]), cols[title]))


def test_rank_ranges_agree_in_the_app_table_the_csv_and_kdbench_show(results):
    records = _records(results)
    rows = aggregate(records)
    expected = {"strong": "1-2", "strong2": "1-2", "weak": "3"}
    assert {m: str(r) for m, r in table_ranges(records, "pgd").items()} == expected
    assert {m: str(r) for m, r in rank_ranges(rows, "pgd").items()} == expected
    numbers, text = tables.leaderboard(rows, "pgd")
    assert dict(zip(numbers["method"], text["rank range"])) == {**expected, "baseline": "—"}
    assert dict(zip(numbers["method"], numbers["rank range"])) == {
        "strong": 1, "strong2": 1, "weak": 3, "baseline": pd_na()}
    out = {r["method"]: r for r in csv.DictReader(io.StringIO(
        tables.csv(rows, "pgd", "mnist5k", MNIST5K.hash)))}
    assert {m: out[m]["rank_range_by_pgd"] for m in expected} == expected
    assert out["weak"]["rank_best"] == out["weak"]["rank_worst"] == "3"
    shown = _show_column(report.table(records, rank_by="pgd"), "rank range")
    assert shown == {**expected, "baseline": "—"}


def pd_na():
    import pandas as pd
    return pd.NA


def test_cells_show_the_t_interval_and_the_csv_its_bounds(results):
    rows = {r.method: r for r in aggregate(_records(results))}
    weak = rows["weak"]
    iv = weak.stats["pgd"].interval
    assert tables.fmt_cell(weak, "pgd") == f"{iv.mean:.1f} ± {iv.half:.1f}"
    out = {r["method"]: r for r in csv.DictReader(io.StringIO(
        tables.csv(list(rows.values()), "pgd", "mnist5k", MNIST5K.hash)))}
    assert float(out["weak"]["pgd_ci_low"]) == pytest.approx(iv.lo)
    assert float(out["weak"]["pgd_ci_high"]) == pytest.approx(iv.hi)
    shown = _show_column(report.table(list(_records(results)), rank_by="pgd"), "PGD %")
    assert shown["weak"] == f"{iv.mean:.1f} ± {iv.half:.1f}"


def test_rows_without_evidence_show_plain_means_and_say_why(monkeypatch, results):
    _without_evidence(results, "weak")
    rows = {r.method: r for r in aggregate(_records(results))}
    assert not rows["weak"].evidence and rows["strong"].evidence
    assert "±" not in tables.fmt_cell(rows["weak"], "pgd")
    numbers, text = tables.leaderboard(list(rows.values()), "pgd")
    by_method = dict(zip(numbers["method"], text["rank range"]))
    assert by_method["weak"] == "—"
    assert by_method["strong"] == by_method["strong2"] == "1-3"  # weak is separated from no one
    assert "weak †" in list(text["method"])
    at = run_app(monkeypatch, results)
    assert any("without per-example evidence" in i.value for i in at.tabs[0].info)
    assert "rank ranges" not in str(_show_column(report.table(_records(results)), "method"))
    assert "without per-example evidence" in str(report.table(_records(results)).caption)


# -- the app ---------------------------------------------------------------------------------------
def test_the_board_names_the_methods_no_test_separates(monkeypatch, results):
    at = run_app(monkeypatch, results)
    at.sidebar.selectbox[1].set_value("pgd").run()
    df = at.tabs[0].dataframe[0].value
    assert dict(zip(df["method"], df["rank range"].astype("object"))) == {
        "strong": 1, "strong2": 1, "weak": 3, "baseline": pd_na()}
    notes = [t.value for t in at.tabs[0].text]
    assert "rank 1-2: strong, strong2" in notes


def test_compare_tab_shows_the_paired_tests_and_the_verdict(monkeypatch, results):
    at = run_app(monkeypatch, results)
    at.selectbox(key="compare_a").set_value("strong").run()
    at.selectbox(key="compare_b").set_value("weak").run()
    panel = tab(at, "Compare")
    verdicts = "\n".join(t.value for t in panel.text)
    assert "PGD %: strong > weak" in verdicts and "FGSM %: strong > weak" in verdicts
    paired = panel.dataframe[0].value
    pgd = paired[paired["metric"] == "PGD %"].iloc[0]
    assert pgd["verdict"] == "A > B" and pgd["Holm p"] < 0.05 and pgd["CI low"] > 0
    assert pgd["McNemar p per seed"].count("seed ") == 3
    assert panel.get("vega_lite_chart"), "the significance matrix is drawn"
    at.selectbox(key="compare_b").set_value("strong2").run()
    verdicts = "\n".join(t.value for t in tab(at, "Compare").text)
    assert "PGD %: no significant difference" in verdicts


def test_compare_tab_explains_why_it_cannot_test(monkeypatch, results):
    _without_evidence(results, "weak")
    at = run_app(monkeypatch, results)
    at.selectbox(key="compare_a").set_value("strong").run()
    at.selectbox(key="compare_b").set_value("weak").run()
    panel = tab(at, "Compare")
    assert any("No paired test for these two" in i.value for i in panel.info)
    assert any("weak seed 0" in t.value for t in panel.text)


def test_significance_matrix_is_win_tie_loss(results):
    rows = aggregate(_records(results))
    cells = comparison.significance(rows, "pgd")
    outcome = {(r.row, r.column): r.outcome for r in cells.itertuples()}
    assert outcome[("strong", "weak")] == "win" and outcome[("weak", "strong")] == "loss"
    assert outcome[("strong", "strong2")] == outcome[("strong2", "strong")] == "tie"
    assert outcome[("strong", "strong")] == "—"


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.integration
def test_kdbench_compare_prints_the_verdicts(results):
    proc = kdbench("compare", "strong", "weak", "--results-dir", str(results), "--metric", "pgd",
                   "--metric", "robust")
    assert proc.returncode == 0, proc.stderr
    assert "PGD %: strong > weak (Holm-adjusted p = " in proc.stdout
    assert "robust %: strong > weak" in proc.stdout and "seed 2:" in proc.stdout
    same = kdbench("compare", "strong", "strong2", "--results-dir", str(results))
    assert same.returncode == 0 and "PGD %: no significant difference" in same.stdout
    bad = kdbench("compare", "strong", "weak", "--results-dir", str(results), "--metric", "pgdd")
    assert bad.returncode == 2 and "--metric pgdd: not a metric" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = kdbench("compare", "strong", "nobody", "--results-dir", str(results))
    assert missing.returncode == 2 and "no records of 'nobody'" in missing.stderr


def test_method_detail_sets_the_seed_spread_against_the_sampling_error(monkeypatch, results):
    rows = {r.method: r for r in aggregate(_records(results))}
    frame = tables.spread(rows["weak"]).set_index("metric")
    pgd = [r.metrics.pgd_acc for r in rows["weak"].records]
    assert frame.loc["PGD %", "std over seeds"] == pytest.approx(np.std(pgd, ddof=1), abs=0.005)
    se = np.mean([100 * np.sqrt(v / 100 * (1 - v / 100) / 1000) for v in pgd])
    assert frame.loc["PGD %", "within-seed SE"] == pytest.approx(se, abs=0.005)
    at = run_app(monkeypatch, results)
    at.selectbox(key="detail_method").set_value("weak").run()
    assert any("sampling error" in c.value for c in tab(at, "Method detail").caption)
