"""The Streamlit leaderboard over `results/`. It reads records only: nothing here imports method
code or loads checkpoints, and nothing in `bench/` imports from here."""
