"""The leaderboard's "Teachers" view: one method under the protocols that differ only in their
teacher (mnist5k and mnist5k-robust), numbers against the record files."""

import json
import statistics
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bench.protocols import get_protocol
from support import REPO, tab
from leaderboard import data, teachers
from leaderboard.data import RESULTS_DIR_ENV
from leaderboard.metrics import aggregate
from support import make_record, standard_results, write

ROBUST_HASH = get_protocol("mnist5k-robust").hash
PLAIN = "mnist5k (teacher: baseline)"
ROBUST = "mnist5k-robust (teacher: pgd_at)"


def robust_results(template: dict, results: Path) -> Path:
    """The mnist5k standard results, and mnist5k-robust records with other numbers."""
    standard_results(template, results)
    kw = dict(protocol="mnist5k-robust", protocol_hash=ROBUST_HASH)
    write(results, make_record(template, "teacher", 0, family="reference", clean=97.0, fgsm=80.0,
                               pgd=75.0, **kw))
    for seed in range(3):
        write(results, make_record(template, "robustkd", seed, family="adversarial",
                                   clean=93.0 + seed, fgsm=78.0 + seed, pgd=71.0 + seed, **kw))
        write(results, make_record(template, "baseline", seed, family="reference",
                                   clean=95.0 + seed, fgsm=44.0 + seed, pgd=4.0 + seed, **kw))
    return results


def run_app(monkeypatch, results: Path) -> AppTest:
    monkeypatch.setenv(RESULTS_DIR_ENV, str(results))
    st.cache_data.clear()
    at = AppTest.from_file(str(REPO / "leaderboard" / "app.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def means(results: Path, protocol: str, method: str, field: str) -> float:
    return statistics.fmean(json.loads(f.read_text())["metrics"][field]
                            for f in (results / protocol / method).glob("seed-*.json"))


@pytest.fixture
def results(record_template, tmp_path) -> Path:
    return robust_results(record_template, tmp_path / "results")


def test_variants_are_the_registered_protocols_that_differ_only_in_the_teacher(results,
                                                                              record_template):
    write(results, make_record(record_template, "vanilla", 0, protocol="cifar10",
                               protocol_hash=get_protocol("cifar10").hash))
    write(results, make_record(record_template, "vanilla", 0, protocol="mnist5k-robust",
                               protocol_hash="0" * 16))  # an outdated definition
    loaded = data.load(results)
    by_name = {(k.name, k.hash): k for k in loaded.protocols}
    plain = by_name[("mnist5k", get_protocol("mnist5k").hash)]
    robust = by_name[("mnist5k-robust", ROBUST_HASH)]
    assert teachers.variants(loaded, plain) == [plain, robust]
    assert teachers.variants(loaded, robust) == [robust, plain]
    assert teachers.variants(loaded, by_name[("cifar10", get_protocol("cifar10").hash)]) == []
    assert teachers.variants(loaded, by_name[("mnist5k-robust", "0" * 16)]) == []


def test_table_puts_the_method_under_each_teacher_beside_the_teachers_own_numbers(results):
    loaded = data.load(results)
    keys = teachers.variants(loaded, loaded.protocols[0])
    rows = {k: aggregate(loaded.by_protocol[k]) for k in keys}
    assert teachers.methods(rows) == ["baseline", "robustkd"]  # vanilla is under one teacher
    numbers, text = teachers.table("robustkd", rows)
    assert list(numbers.columns) == ["metric", PLAIN, ROBUST, "difference"]
    got = numbers.set_index("metric")
    for line, who, field in (("teacher clean %", "teacher", "clean_acc"),
                             ("teacher PGD %", "teacher", "pgd_acc"),
                             ("clean %", "robustkd", "clean_acc"), ("PGD %", "robustkd", "pgd_acc"),
                             ("robust %", "robustkd", "robust_acc")):
        a, b = (means(results, p, who, field) for p in ("mnist5k", "mnist5k-robust"))
        assert (got.at[line, PLAIN], got.at[line, ROBUST]) == pytest.approx((a, b)), line
        assert got.at[line, "difference"] == pytest.approx(b - a), line
    assert "AutoAttack %" not in got.index  # run nowhere: no line, never 0
    assert text.set_index("metric").at["teacher PGD %", ROBUST] == "75.0"


def test_teachers_tab_in_the_app(monkeypatch, results):
    at = run_app(monkeypatch, results)
    panel = tab(at, "Teachers")
    assert panel.label == "Teachers"
    df = panel.dataframe[0].value.set_index("metric")
    assert panel.selectbox[0].value == "robustkd"  # the best robust % among shared methods
    assert df.at["PGD %", ROBUST] == pytest.approx(means(results, "mnist5k-robust", "robustkd",
                                                         "pgd_acc"))


def test_teachers_tab_says_when_there_is_nothing_to_compare(monkeypatch, record_template,
                                                            tmp_path):
    at = run_app(monkeypatch, standard_results(record_template, tmp_path / "results"))
    panel = tab(at, "Teachers")
    assert not panel.dataframe and "only in its teacher" in panel.info[0].value
