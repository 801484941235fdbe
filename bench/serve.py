"""`kdbench leaderboard`: the command that serves the Streamlit app over a results directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.errors import UsageError
from bench.records.layout import REPO_URL_ENV, RESULTS_DIR_ENV


def streamlit_command(results_dir: Path, host: str, port: int, repo_url: str | None
                      ) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of `streamlit run leaderboard/app.py` for these records."""
    # A path, not an import: bench/ never imports from leaderboard/ (data flows one way).
    app_file = Path(__file__).resolve().parent.parent / "leaderboard" / "app.py"
    if not app_file.is_file():
        raise UsageError(f"the leaderboard app is not installed ({app_file} is missing)")
    env = dict(os.environ, **{RESULTS_DIR_ENV: str(Path(results_dir).resolve())})
    if repo_url is not None:
        env[REPO_URL_ENV] = repo_url
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_file),
           "--server.headless", "true", "--server.address", host, "--server.port", str(port),
           "--browser.gatherUsageStats", "false",
           # A served leaderboard is not a development session: no reload on file saves, no
           # developer menu.
           "--server.fileWatcherType", "none", "--server.runOnSave", "false",
           "--client.toolbarMode", "viewer"]
    return cmd, env
