"""`kdbench export-robustbench`, registered on the app by bench/cli.py (kept apart so that the
command line stays short: the logic is bench/robustbench_export.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from bench.progress import make_console


def export_robustbench(
    method: Annotated[str, typer.Option(help="The method whose student to export.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Where model_info/, models/ and the kdbench manifest go.")],
    protocol: Annotated[str, typer.Option(help="A CIFAR-10 protocol; with a zoo teacher, its records' name (cifar10-robust+robustbench-NAME).")] = "cifar10-robust",
    results_dir: Annotated[Path, typer.Option(help="Where its records are.")] = Path("results"),
    seed: Annotated[Optional[int], typer.Option(help="Which seed's model [default: the protocol's first].")] = None,
    name: Annotated[Optional[str], typer.Option(help="The model's RobustBench name [default: Kdbench_<protocol>_<method>_seed<N>].")] = None,
    title: Annotated[str, typer.Option(help="RobustBench's `name` field: the paper's title.")] = "",
    authors: Annotated[str, typer.Option(help="RobustBench's `authors` field.")] = "",
    link: Annotated[str, typer.Option(help="RobustBench's `link` field: the paper's URL.")] = "",
    venue: Annotated[str, typer.Option(help="RobustBench's `venue` field.")] = "",
    allow_smoke: Annotated[bool, typer.Option("--allow-smoke", help="Export a --smoke record (trials only: never a result to publish).")] = False,
) -> None:
    """Write a student in RobustBench's format (model_info JSON and a checkpoint load_model
    reads) from a record with AutoAttack (`kdbench run --full`), and check robustbench loads it."""
    from bench.robustbench_export import Paper, export
    done = export(protocol, method, results_dir, out_dir, seed=seed, name=name,
                  paper=Paper(name=title, authors=authors, link=link, venue=venue),
                  allow_smoke=allow_smoke)
    out = make_console()
    out.print(f"exported {done.record} as {done.name}:\n  {done.info}\n  {done.checkpoint}\n"
              "robustbench's load_model read it back with identical logits. To load it: "
              "from bench.robustbench_export import register_exported; "
              f"register_exported({str(out_dir)!r}); load_model({done.name!r}, "
              f"model_dir={str(out_dir / 'models')!r}, dataset='cifar10', threat_model='Linf')",
              highlight=False, soft_wrap=True)
