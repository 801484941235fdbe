"""The Streamlit app end to end, in-process (streamlit.testing.v1.AppTest): what the table says
against what the record files say, protocol switch, filters, empty state, bad files, HTML names."""

import json
import statistics
from collections import defaultdict
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from support import REPO, tab
from leaderboard.data import RESULTS_DIR_ENV
from support import MNIST5K_HASH, make_record, standard_results, write

APP = str(REPO / "leaderboard" / "app.py")
# Element types whose text Streamlit renders as Markdown: record strings must never be in them.
MARKDOWN_ELEMENTS = ("markdown", "caption", "title", "header", "subheader", "warning", "info",
                     "error", "success", "exception")


def run_app(monkeypatch, results: Path) -> AppTest:
    monkeypatch.setenv(RESULTS_DIR_ENV, str(results))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def board(at: AppTest):
    """The main table: the first dataframe inside the Leaderboard tab."""
    return at.tabs[0].dataframe[0].value


def expected_means(results: Path, protocol: str, field: str) -> dict[str, tuple[float, float]]:
    """Mean and std of metrics.<field> per method, straight from the JSON files."""
    values = defaultdict(list)
    for f in (results / protocol).glob("*/seed-*.json"):
        d = json.loads(f.read_text())
        values[d["method"]].append(d["metrics"][field])
    return {m: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0)
            for m, v in values.items()}


@pytest.fixture
def results(record_template, tmp_path) -> Path:
    return standard_results(record_template, tmp_path / "results")


def test_table_rows_and_values_equal_the_records(monkeypatch, results):
    at = run_app(monkeypatch, results)
    df = board(at)
    assert sorted(df["method"]) == ["baseline", "robustkd", "teacher", "vanilla"]
    for column, field in (("clean", "clean_acc"), ("pgd", "pgd_acc"), ("fgsm", "fgsm_acc"),
                          ("corruptions", "corruptions_acc"), ("robust", "robust_acc")):
        expected = expected_means(results, "mnist5k", field)
        got = dict(zip(df["method"], df[column]))
        assert got == pytest.approx({m: mean for m, (mean, _) in expected.items()}), column
    assert dict(zip(df["method"], df["seeds"])) == {"teacher": 1, "baseline": 3, "vanilla": 3,
                                                    "robustkd": 3}
    # ranked by robust % by default; reference rows carry no rank
    assert list(df["method"][:2]) == ["robustkd", "vanilla"] and list(df["rank"][:2]) == [1, 2]
    assert df.loc[df["method"] == "teacher", "rank"].isna().all()
    assert df["autoattack"].isna().all() and df["gpu_ms"].isna().all()  # never 0


def test_ranking_metric_reorders_the_table(monkeypatch, results):
    at = run_app(monkeypatch, results)
    at.sidebar.selectbox[1].set_value("clean").run()
    df = board(at)
    assert list(df["method"]) == ["teacher", "vanilla", "baseline", "robustkd"]
    assert list(df["rank"].dropna()) == [1, 2]


def test_protocol_switch_never_mixes_versions(monkeypatch, record_template, results):
    write(results, make_record(record_template, "vanilla", 7, protocol_hash="0" * 16, clean=11.0))
    write(results, make_record(record_template, "other", 0, protocol="cifar100",
                               protocol_hash="1" * 16, clean=55.0))
    at = run_app(monkeypatch, results)
    protocol = at.sidebar.selectbox[0]
    assert [o for o in protocol.options] == [f"mnist5k · {MNIST5K_HASH[:8]}", "mnist5k · 00000000 (outdated "
                                             "definition)", "cifar100 · 11111111 (not registered "
                                             "in this kdbench)"]
    assert 11.0 not in list(board(at)["clean"])
    protocol.set_value(at.sidebar.selectbox[0].options[1]).run()
    df = board(at)
    assert list(df["method"]) == ["vanilla"] and list(df["clean"]) == [11.0]
    assert any("older definition" in w.value for w in at.warning)
    at.sidebar.selectbox[0].set_value(at.sidebar.selectbox[0].options[2]).run()
    assert list(board(at)["method"]) == ["other"]


def test_records_made_on_other_data_are_never_mixed(monkeypatch, record_template, results):
    odd = make_record(record_template, "vanilla", 9, clean=12.0)
    odd["provenance"]["data_fingerprint"] = "ffffffffffffffff"
    write(results, odd)
    at = run_app(monkeypatch, results)
    labels = list(at.sidebar.selectbox[0].options)
    assert len(labels) == 2 and all(" · data " in label for label in labels)
    tables = []
    for label in labels:
        at.sidebar.selectbox[0].set_value(label).run()
        tables.append(list(board(at)["clean"]))
        assert any("more than one data set" in w.value for w in at.warning)
    assert [12.0] in tables and sum(12.0 in t for t in tables) == 1


def test_family_and_flag_filters(monkeypatch, record_template, results):
    write(results, make_record(record_template, "flaky", 0, unreliable=True,
                               unreliable_reasons=["PGD weaker than FGSM"],
                               sanity_checks=[{"name": "pgd_vs_fgsm", "passed": False,
                                               "detail": "PGD 40 > FGSM 30"}]))
    at = run_app(monkeypatch, results)
    df = board(at)
    assert df.loc[df["method"] == "flaky", "flags"].item() == "⚠ unreliable (1/1 seeds)"
    at.sidebar.multiselect[0].set_value(["logit"]).run()
    assert sorted(board(at)["method"]) == ["flaky", "vanilla"]
    at.sidebar.checkbox[0].check().run()  # hide rows flagged unreliable
    assert list(board(at)["method"]) == ["vanilla"]
    at.sidebar.multiselect[0].set_value(["adversarial", "logit", "reference"]).run()
    at.sidebar.checkbox[1].check().run()  # only verified: nothing is; references stay
    assert sorted(board(at)["method"]) == ["baseline", "teacher"]


def test_empty_and_missing_results_directories_say_how_to_make_results(monkeypatch, tmp_path):
    for results in (tmp_path / "empty", tmp_path / "missing"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        at = run_app(monkeypatch, results)
        assert not at.dataframe
        assert "No results to show yet" in at.info[0].value
        assert "make bench" in at.code[0].value and "kdbench run" in at.code[0].value
        assert str(results) in at.text[-1].value


def test_bad_files_are_named_in_a_warning_and_the_rest_still_shows(monkeypatch, record_template,
                                                                    results):
    (results / "mnist5k" / "broken").mkdir()
    (results / "mnist5k" / "broken" / "seed-0.json").write_text("{ not json")
    bad = make_record(record_template, "invalid", 0)
    bad["metrics"]["pgd_acc"] = -3
    write(results, bad)
    write(results, make_record(record_template, "quick", 0, smoke=True))
    at = run_app(monkeypatch, results)
    assert "2 record file(s) could not be used" in at.warning[0].value
    skipped = at.dataframe[0].value
    assert dict(zip(skipped["file"], skipped["reason"])).keys() == {
        "mnist5k/broken/seed-0.json", "mnist5k/invalid/seed-0.json"}
    assert any("metrics.pgd_acc" in r for r in skipped["reason"])
    assert "--smoke record(s) skipped" in at.expander[0].label
    assert sorted(board(at)["method"]) == ["baseline", "robustkd", "teacher", "vanilla"]


def test_html_and_markdown_in_names_are_shown_as_text(monkeypatch, record_template, tmp_path):
    names = ["<img src=x onerror=alert(1)>", "**bold** [click](javascript:alert(1))"]
    for name in names:
        write(tmp_path, make_record(record_template, name, 0))
    at = run_app(monkeypatch, tmp_path)
    assert sorted(board(at)["method"]) == sorted(names)
    assert set(at.selectbox(key="detail_method").options) == set(names)
    for kind in MARKDOWN_ELEMENTS:
        for element in at.get(kind):
            text = str(getattr(element, "value", "")) + str(getattr(element, "label", ""))
            assert not any(n in text or "onerror" in text for n in names), (kind, text)


def test_optional_measurements_appear_when_recorded(monkeypatch, record_template, tmp_path):
    write(tmp_path, make_record(record_template, "a", 0, autoattack_acc=21.0,
                                eps_curve=[{"eps": "0.05", "acc": 60.0}, {"eps": "0.1", "acc": 30.0}]))
    write(tmp_path, make_record(record_template, "b", 0))
    at = run_app(monkeypatch, tmp_path)
    df = board(at)
    assert dict(zip(df["method"], df["autoattack"].fillna(-1))) == {"a": 21.0, "b": -1}
    eps_tab = tab(at, "Accuracy vs eps")
    assert eps_tab.get("vega_lite_chart") and not eps_tab.info


def test_a_zoo_teacher_is_shown_in_the_protocol_panel(monkeypatch, record_template, tmp_path):
    from bench.protocols import ZooTeacher, get_protocol
    from bench.records import Record
    source = ZooTeacher("robustbench", "Sehwag2021Proxy_R18", "cifar10", "Linf", "ab" * 32)
    p = get_protocol("cifar10-robust").with_teacher(source)
    ref = {**source.__dict__, "published_clean_acc": 84.59, "checked_clean_acc": 84.6,
           "checked_n": 10000}
    results = tmp_path / "results"
    for method in ("teacher", "vanilla"):
        d = make_record(record_template, method, 0)
        d.update(protocol=p.name, protocol_hash=p.hash, teacher_source=ref)
        if method == "teacher":
            d["training"] = None  # the zoo's weights: nothing trained here
        Record.model_validate(d)
        write(results, d)
    at = run_app(monkeypatch, results)
    assert list(at.sidebar.selectbox[0].options) == [f"{p.name} · {p.hash[:8]}"]  # registered
    shown = "\n".join(t.value for t in at.text)
    assert "robustbench:Sehwag2021Proxy_R18  (cifar10, Linf)" in shown
    assert f"checkpoint sha256 {'ab' * 32}" in shown
    assert "published 84.59%; 84.60% on the first 10000 official test images" in shown
    assert sorted(board(at)["method"]) == ["teacher", "vanilla"]
