"""The kdbench leaderboard: `kdbench leaderboard` runs this file with `streamlit run`.

It reads result records only (`KDBENCH_RESULTS_DIR`, default ./results): no method code, no
checkpoints. The page is glue; what it shows is computed in `leaderboard.data` (which records
count), `leaderboard.metrics` (aggregation), `leaderboard.tables` and `leaderboard.plots`, and laid
out in `leaderboard.views`.

Safety rule for every view: strings that come from records (method names, paths, reasons) go only
into dataframes, charts, st.text, st.code, st.json and widget options, never into markdown.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from leaderboard import comparison, data, deployment, teachers, views
from leaderboard.metrics import BY_KEY, METRICS, aggregate, select


@st.cache_data(show_spinner="Reading records…", max_entries=8)
def _load(results_dir: str, fingerprint: data.Fingerprint) -> data.Loaded:
    """Cached on the directory and its files' (path, mtime, size): re-read only on change."""
    return data.load(Path(results_dir))


st.set_page_config(page_title="kdbench leaderboard", page_icon="🧪", layout="wide")
results_dir = data.results_dir_from_env()
loaded = _load(str(results_dir), data.fingerprint(results_dir))

st.title("kdbench leaderboard")
st.caption("Knowledge-distillation methods under one fixed protocol: which student is most "
           "accurate, most robust and cheapest to run? Numbers are mean ± half-width of the "
           "95 % confidence interval over seeds; rank ranges say which differences the paired "
           "tests support.")

with st.sidebar:
    st.caption("Results directory")
    st.text(str(results_dir.resolve()))
    st.button("Reload records", help="Records are re-read whenever a file changes; this only "
              "reruns the page.")

views.skipped_files(loaded)
if not loaded.by_protocol:
    views.empty_state(results_dir, loaded)
    st.stop()

with st.sidebar:
    key = st.selectbox("Protocol", loaded.protocols, format_func=data.ProtocolKey.label,
                       help="Numbers from different protocols, or from different definitions "
                            "(hashes) of one protocol, are never mixed in one table.")
    rank_by = st.selectbox("Rank by", [m.key for m in METRICS],
                           index=[m.key for m in METRICS].index("robust"),
                           format_func=lambda k: BY_KEY[k].label)
rows = aggregate(loaded.by_protocol[key])
with st.sidebar:
    families = sorted({r.family for r in rows})
    chosen = st.multiselect("Families", families, default=families)
    hide_unreliable = st.checkbox("Hide rows flagged unreliable")
    only_verified = st.checkbox("Only verified results",
                                help="Reference rows stay visible for context.")

views.protocol_note(key, loaded.by_protocol[key])
visible = select(rows, chosen, hide_unreliable, only_verified)

board, trade, corr, eps, deploy, detail, compare, by_teacher = st.tabs(
    ["Leaderboard", "Trade-offs", "Corruptions", "Accuracy vs eps", "Deployment", "Method detail",
     "Compare", "Teachers"])
with board:
    views.leaderboard(rows, visible, rank_by, key, os.environ.get(data.REPO_URL_ENV))
with trade:
    views.tradeoffs(visible)
with corr:
    views.corruptions(visible)
with eps:
    views.eps_curves(visible, loaded.by_protocol[key])
with deploy:
    deployment.deployment(rows, visible, rank_by)
with detail:
    views.method_detail(rows, key)
with compare:
    comparison.view(rows)
with by_teacher:
    views.teacher_comparison({k: rows if k == key else aggregate(loaded.by_protocol[k])
                              for k in teachers.variants(loaded, key)}, rows)
