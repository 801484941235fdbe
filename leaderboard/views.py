"""The leaderboard's sections, one function each; `leaderboard/app.py` lays them out.

Strings from records never reach markdown here (see app.py): fixed sentences go to st.info /
st.caption, record text to dataframes, st.text, st.code and st.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import streamlit as st

from bench.records import Record
from bench.records.significance import NO_EVIDENCE_NOTE, rankable, shared_ranges
from leaderboard import plots, tables, teachers
from leaderboard.data import Loaded, ProtocolKey, Status
from leaderboard.metrics import (ACCURACIES, BY_KEY, COSTS, METRICS, MethodRow, rank,
                                 rank_ranges)


def table(data, **kwargs) -> None:
    """st.dataframe as every view wants it: no index, full width, "—" for missing values."""
    st.dataframe(data, hide_index=kwargs.pop("hide_index", True),
                 width=kwargs.pop("width", "stretch"), placeholder=tables.MISSING, **kwargs)


def skipped_files(loaded: Loaded) -> None:
    if loaded.errors:
        st.warning(f"{len(loaded.errors)} record file(s) could not be used and are not shown. "
                   "The rest of the leaderboard is unaffected; `kdbench validate` checks a "
                   "results directory from the command line.", icon="⚠️")
        table(pd.DataFrame([{"file": s.path, "reason": s.reason} for s in loaded.errors]),
              column_config={"reason": st.column_config.TextColumn(width="large")})
    if loaded.smoke:
        with st.expander(f"{len(loaded.smoke)} --smoke record(s) skipped: smoke runs only check "
                         "that a method runs and are never leaderboard results"):
            table(pd.DataFrame([{"file": s.path} for s in loaded.smoke]))


def empty_state(results_dir: Path, loaded: Loaded) -> None:
    st.info("No results to show yet. Produce them with the full benchmark, then reload this "
            "page:", icon="📭")
    st.code("make bench                            # every method, every seed, default protocol\n"
            "kdbench run --results-dir DIR         # or choose --protocol, --methods, --seeds\n"
            "kdbench leaderboard --results-dir DIR # show DIR here", language="bash")
    why = ("does not exist" if not loaded.exists else
           "holds no usable <protocol>/<method>/seed-<n>.json records")
    st.text(f"Reading {results_dir.resolve()}: it {why}.")


def protocol_note(key: ProtocolKey, records: list[Record]) -> None:
    if key.status is Status.OUTDATED:
        st.warning("These records were made under an older definition of this protocol (hash "
                   f"{key.hash}; the registered definition is {key.definition().hash}). They "
                   "are shown on their own, never mixed with current results; rerun them to "
                   "compare.", icon="🕰️")
    elif key.status is Status.UNREGISTERED:
        st.info("This protocol is not registered in this kdbench (records from a newer or "
                "another version); its definition is not shown, only its records.", icon="ℹ️")
    if key.data:
        st.warning(f"This protocol's records were evaluated on more than one data set; these "
                   f"{len(records)} share data fingerprint {key.data}, and the others are "
                   "shown in a table of their own. `kdbench validate` names the records to rerun "
                   "on the same data.", icon="⚠️")
    with st.expander("Protocol"):
        st.text(f"{key.name}  hash {key.hash}  ({key.status.value})  {len(records)} records")
        zoo_teacher(records)
        attacks = sorted({r.metrics.attacks.model_dump_json() for r in records})
        st.caption("Attack settings recorded in the results")
        st.json([json.loads(a) for a in attacks] if len(attacks) > 1 else json.loads(attacks[0]),
                expanded=False)
        if key.status is Status.REGISTERED:
            st.caption("Registered definition (`bench/protocols.py`)")
            st.json(key.definition().to_dict(), expanded=False)


def zoo_teacher(records: list[Record]) -> None:
    """The teacher, when it came from RobustBench's model zoo: which checkpoint, and its clean
    accuracy as checked against the zoo's published number."""
    src = next((r.teacher_source for r in records if r.teacher_source is not None), None)
    if src is None:
        return
    st.caption("Teacher from RobustBench's model zoo (not trained by kdbench)")
    check = ("not checked (no published number, or not the official test set)"
             if src.checked_clean_acc is None else
             f"{src.checked_clean_acc:.2f}% on the first {src.checked_n} official test images")
    published = "unknown" if src.published_clean_acc is None else f"{src.published_clean_acc:.2f}%"
    st.text(f"{src.zoo}:{src.name}  ({src.dataset}, {src.threat_model})\n"
            f"checkpoint sha256 {src.sha256}\n"
            f"clean accuracy: published {published}; {check}")


def _column_config(rank_by: str, repo_url: str | None) -> dict:
    cfg: dict = {
        # Pixel widths for the short columns: the table is wide and the source path, last,
        # should stay in view on a laptop screen.
        "rank": st.column_config.NumberColumn(
            "rank", width=50,
            help=f"Order of the means among KD methods by {BY_KEY[rank_by].label}; reference "
                 "rows are unranked"),
        "rank range": st.column_config.NumberColumn(
            "rank range", width=80,
            help="The ranks the paired tests allow: best = 1 + methods significantly better, "
                 "worst = methods not significantly worse (paired t-test over seeds, p < 0.05)"),
        # Not pinned: Streamlit draws pinned columns faded, and the name is what readers look for.
        "method": st.column_config.TextColumn("method"),
        "family": st.column_config.TextColumn("family", width=95),
        "seeds": st.column_config.NumberColumn("seeds", width=55,
                                               help="Seeds aggregated (mean ± std)"),
        "flags": st.column_config.TextColumn(
            "flags", width=130, help="⚠ unreliable: a gradient-masking sanity check failed (reasons below "
                          "the table); ✓ verified: an independent re-run reproduced the numbers"),
        "source": (st.column_config.LinkColumn("source", help="The method's file")
                   if repo_url else
                   st.column_config.TextColumn("source", help="The method's file, relative to "
                                               "the repository (set KDBENCH_REPO_URL to link)")),
    }
    for m in METRICS:
        cfg[m.key] = st.column_config.NumberColumn(m.label, help=m.help)
    return cfg


def leaderboard(rows: list[MethodRow], visible: list[MethodRow], rank_by: str, key: ProtocolKey,
                repo_url: str | None) -> None:
    if not visible:
        st.info("No method matches the filters in the sidebar.")
        return
    numbers, text = tables.leaderboard(rows, rank_by, repo_url)  # ranks over every method
    keep = numbers["method"].isin({r.method for r in visible})
    numbers, text = numbers[keep].reset_index(drop=True), text[keep].reset_index(drop=True)
    # Optional measurements get a column only when some record of the protocol has them, and
    # badges only when some row has one: the table is wide, the source path must stay in view.
    absent = {m.key for m in METRICS if all(r.stats[m.key] is None for r in rows)}
    # Other groups' metrics have their own view; the one ranked by stays in sight.
    absent |= {m.key for m in METRICS if m.group != "main" and m.key != rank_by}
    if not any(r.flags for r in rows):
        absent.add("flags")
    order = [c for c in numbers.columns if c not in absent]
    table(tables.styled(numbers, text), column_order=order,
          column_config=_column_config(rank_by, repo_url))
    st.caption(f"Ranked by {BY_KEY[rank_by].label} (higher is better for accuracies, lower for "
               "costs). Reference rows (grey) are context and unranked. Cells: mean ± half-width "
               "of the 95 % t-interval over seeds. Click a column header to sort by it; — means "
               "not measured.")
    _rank_note(rows, visible, rank_by)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", key.name)
    st.download_button("Download CSV", tables.csv(rows, rank_by, key.name, key.hash),
                       file_name=f"kdbench-{name}-{key.hash[:8]}.csv", mime="text/csv",
                       help="Every method of this protocol version, mean/std/seed count per "
                            "metric (filters not applied)")
    flagged = [r for r in visible if r.unreliable]
    if flagged:
        with st.expander(f"Why {len(flagged)} row(s) are flagged unreliable"):
            table(pd.DataFrame([{"method": r.method, "reason": reason}
                                for r in flagged
                                for reason in r.unreliable_reasons or ["(no reason recorded)"]]))


def _rank_note(rows: list[MethodRow], visible: list[MethodRow], rank_by: str) -> None:
    """Under the table: which methods no test separates, and why some rows have no interval."""
    if not rankable(rank_by):
        st.caption("Rank ranges are given for accuracies and corruption errors; costs depend on "
                   "the architecture, not on the seed.")
    else:
        shown = {r.method for r in visible}
        ranges = {m: rr for m, rr in rank_ranges(rows, rank_by).items() if m in shown}
        st.caption("Rank range: best = 1 + methods a paired t-test over seeds finds significantly "
                   "better (p < 0.05), worst = methods it does not find significantly worse. "
                   "Methods no test separates share a rank range:" if ranges else
                   "No rank ranges: no ranked row carries per-example evidence.")
        shared = shared_ranges(ranges)
        if shared:
            st.text("\n".join(f"rank {rr}: {', '.join(names)}" for rr, names in shared))
        elif ranges:
            st.text("none: every pair of ranked methods is separated")
    if any(not r.evidence for r in visible):
        st.info(NO_EVIDENCE_NOTE, icon="ℹ️")


def tradeoffs(rows: list[MethodRow]) -> None:
    acc_keys = [m.key for m in ACCURACIES if m.group == "main"]  # deployment: its own view
    acc = st.selectbox("Accuracy axis", acc_keys, index=acc_keys.index("robust"),
                       format_func=lambda k: BY_KEY[k].label, key="trade_acc")
    st.caption("Each point is a method (diamonds: reference rows). The dashed staircase is the "
               "Pareto frontier: no other method is both cheaper and more accurate than a method "
               "on it.")
    left, right = st.columns(2)
    for col, cost in ((left, "cpu_ms"), (right, "size")):
        points = tables.tradeoff(rows, cost, acc)
        with col:
            if points.empty:
                st.info(f"No method has both {BY_KEY[acc].label} and {BY_KEY[cost].label}.")
                continue
            title = {"cpu_ms": "CPU latency, batch 1 (ms)", "size": "serialized size (bytes)"}
            st.altair_chart(plots.tradeoff(points, title[cost], BY_KEY[acc].label,
                                           si_units=cost == "size"), width="stretch")
    others = [m for m in COSTS if m.key not in ("cpu_ms", "size") and m.group == "main"]
    with st.expander("Against another cost"):
        cost = st.selectbox("Cost axis", [m.key for m in others],
                            format_func=lambda k: BY_KEY[k].label, key="trade_cost")
        points = tables.tradeoff(rows, cost, acc)
        if points.empty:
            st.info(f"No method has {BY_KEY[cost].label} measured.")
        else:
            st.altair_chart(plots.tradeoff(points, BY_KEY[cost].label, BY_KEY[acc].label,
                                           si_units=cost in ("params", "flops")),
                            width="stretch")


def corruptions(rows: list[MethodRow]) -> None:
    names = {c for r in rows for rec in r.records for c in rec.metrics.corruptions}
    if not names:
        st.info("No record of this protocol carries per-corruption accuracies.")
        return
    by_severity = st.toggle("One column per severity", value=len(names) <= 2,
                            help="Off: each corruption's mean over its severities")
    cells = tables.corruptions(rows, by_severity)
    st.altair_chart(plots.corruption_heatmap(cells), width="stretch")
    st.caption("Accuracy under each corruption (mean over seeds), methods sorted by their mean.")


def eps_curves(rows: list[MethodRow], records: list[Record]) -> None:
    curves = tables.eps_curves(rows)
    eps = sorted({r.metrics.attacks.eps for r in records})
    if curves.empty:
        st.info("No record of this protocol has an accuracy-vs-eps curve yet "
                "(`metrics.eps_curve` is empty). Until the evaluation records one, the PGD "
                f"column of the table is the single point every record has: PGD accuracy at "
                f"eps = {', '.join(eps)}.", icon="📈")
        return
    st.altair_chart(plots.eps_curves(curves), width="stretch")
    missing = sorted(r.method for r in rows if r.method not in set(curves["method"]))
    if missing:
        st.caption(f"{len(missing)} method(s) without a recorded curve are not drawn:")
        st.text(", ".join(missing))


def _per_seed(row: MethodRow) -> None:
    numbers, text = tables.seeds(row)
    table(tables.styled(numbers, text))


def method_detail(rows: list[MethodRow], key: ProtocolKey) -> None:
    names = [r.method for r in rows]
    ranks = rank(rows, "robust")
    top = min(ranks, key=ranks.get) if ranks else names[0]
    name = st.selectbox("Method", names, index=names.index(top), key="detail_method")
    row = rows[names.index(name)]
    facts = {"method": row.method, "family": row.family,
             "rank by robust %": str(ranks.get(row.method, tables.MISSING)),
             "seeds": f"{len(row.seeds)} (seed{'s' * (len(row.seeds) > 1)} "
                      f"{', '.join(map(str, row.seeds))})",
             "protocol": f"{key.name} · {key.hash}", "source": row.source,
             "source sha256": "\n".join(row.source_sha256)}
    table(pd.DataFrame({"field": list(facts), "value": list(facts.values())}))
    if len(row.source_sha256) > 1:
        st.warning("The seeds were run with different versions of the method's source file.")
    st.caption("Per seed, as recorded")
    _per_seed(row)
    if row.evidence and len(row.seeds) > 1:
        st.caption("Seed-to-seed spread against the test set's sampling error (binomial standard "
                   "error of one seed's accuracy, from its per-example results), in points")
        table(tables.spread(row))
    hparams = {f"seed {r.seed}": r.hparams for r in row.records}
    st.caption("Hyper-parameters")
    distinct = {repr(h) for h in hparams.values()}
    st.json(row.records[0].hparams if len(distinct) == 1 else hparams)
    checks = [{"seed": r.seed, **c.model_dump()} for r in row.records
              for c in r.metrics.sanity_checks or []]
    st.caption("Gradient-masking sanity checks")
    if checks:
        table(pd.DataFrame(checks))
    else:
        st.text("not run for this method's records (unreliable: —)")
    if row.unreliable_reasons:
        st.caption("Reasons for the unreliable flag")
        st.text("\n".join(row.unreliable_reasons))
    verifications = {f"seed {r.seed}": r.verification.model_dump(mode="json")
                     for r in row.records if r.verification is not None}
    st.caption("Verification")
    if verifications:
        st.json(verifications)
    else:
        st.text("not verified (no record carries a verification)")
    st.caption("Library versions and machine")
    table(tables.provenance(row), hide_index=False)


def teacher_comparison(rows_by_key: dict[ProtocolKey, list[MethodRow]], current: list[MethodRow]
                       ) -> None:
    """One method under every teacher: protocols that differ from this one only in the teacher."""
    if len(rows_by_key) < 2:
        st.info("No other protocol with results differs from this one only in its teacher (same "
                "data, student, recipe, seeds and evaluation). `make bench` runs mnist5k and "
                "mnist5k-robust: one student, a teacher trained on labels and one trained "
                "adversarially.")
        return
    names = teachers.methods(rows_by_key)
    if not names:
        st.info("No method has results under two of these protocols yet.")
        return
    ranks = rank([r for r in current if r.method in names], "robust")
    top = min(ranks, key=ranks.get) if ranks else names[0]
    name = st.selectbox("Method", names, index=names.index(top), key="teachers_method")
    numbers, text = teachers.table(name, rows_by_key)
    table(tables.styled(numbers, text))
    st.caption("The same method and student, the same data, recipe, seeds and evaluation: only "
               "the teacher it distils from differs. The first lines are the teachers' own "
               "accuracies; mean ± std over seeds; the difference compares the means.")
