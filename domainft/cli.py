"""The `domainft` command: run, validate, predict, models."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from domainft.errors import DomainftError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Fine-tune pretrained encoders into domain classifiers from YAML recipes.")
err = Console(stderr=True)
out = Console()

SET_HELP = "Override a recipe field: --set train.lr=3e-5 (repeatable)."


def _fail(e: Exception) -> None:
    err.print(f"error: {e}", style="red", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(getattr(e, "exit_code", 2))


@app.command()
def run(recipe: Path = typer.Argument(..., help="YAML recipe"),
        set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
        resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its last checkpoint"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars or summary")):
    """Train, evaluate and save a model as the recipe says."""
    from domainft.pipeline import run as run_recipe
    from domainft.recipe import Recipe

    try:
        r = Recipe.from_yaml(recipe, set_ or [])
        result = run_recipe(r, resume=resume, progress=not quiet,
                            echo=(lambda *a: None) if quiet else out.print)
    except DomainftError as e:
        _fail(e)
    if quiet:
        out.print(str(result.run_dir))


@app.command()
def validate(recipe: Path = typer.Argument(..., help="YAML recipe"),
             set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP)):
    """Check a recipe and its data without training; print the resolved recipe."""
    from domainft.bases import resolve_base
    from domainft.recipe import Recipe
    from domainft.tasks import get_task

    try:
        r = Recipe.from_yaml(recipe, set_ or [])
        data = get_task(r.task).load_data(r.data)
        base = resolve_base(r.base.name, r.base.revision)
    except DomainftError as e:
        _fail(e)
    print(r.to_yaml())
    print(f"ok: base {base.describe()}; labels {', '.join(data.labels)}; "
          f"counts {json.dumps(data.report['counts'])}")


@app.command()
def predict(run_dir: Path = typer.Argument(..., help="run directory (or its model/)"),
            texts: List[str] = typer.Argument(..., help="texts to classify")):
    """Predict labels for texts with a trained run; prints one JSON object per text."""
    from domainft.model import load

    try:
        model = load(run_dir)
    except DomainftError as e:
        _fail(e)
    for text, pred in zip(texts, model.predict(texts)):
        print(json.dumps({"text": text, **pred}))


@app.command()
def models():
    """List the base aliases and whether each is available offline."""
    from rich.table import Table

    from domainft.bases import available_models

    table = Table("alias", "available", "where", "description")
    for row in available_models():
        avail = {True: "yes", False: "no", None: "online"}[row["available"]]
        table.add_row(row["alias"], avail, row["where"], row["description"])
    out.print(table)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
