"""The ``mixprec study`` subcommand: list and run the shipped study recipes."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``study list`` and ``study run`` to the ``mixprec`` command's subparsers."""
    p = subparsers.add_parser("study", help="list and run study recipes (TOML)",
                              description=__doc__)
    verbs = p.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help=list_recipes.__doc__)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_recipes)
    running = verbs.add_parser("run", help=run_recipe.__doc__, description=run_recipe.__doc__)
    running.add_argument("recipe", help="a shipped recipe's name or a .toml file")
    running.add_argument("--weights", default=None,
                         help="state-dict file for --model (timm or retrained embedded weights)")
    running.add_argument("--data", default=None,
                         help="an ImageNet-style folder or a tensor file (top-1 with labels)")
    running.add_argument("--out", type=Path, default=None,
                         help="output folder (default: runs/study-<recipe>)")
    running.add_argument("--threads", type=int, default=2)
    running.add_argument("--quiet", action="store_true", help="no progress on stderr")
    running.add_argument("--json", action="store_true", help="print the rows as JSON")
    running.set_defaults(func=run_recipe)


def list_recipes(args: argparse.Namespace) -> int:
    """List the shipped study recipes."""
    from mixprec.studies import load_recipe, recipe_names

    recipes = [load_recipe(name) for name in recipe_names()]
    if args.json:
        print(json.dumps([asdict(r) for r in recipes], indent=1))
        return 0
    for recipe in recipes:
        print(f"{recipe.name:<26} {recipe.model} on {recipe.device}: {recipe.title}")
    return 0


def run_recipe(args: argparse.Namespace) -> int:
    """Run a study recipe: compare its plans' accuracy and latency, write the comparison
    table (CSV, Markdown, JSON) and the search's run folder."""
    from mixprec.cli.progress import Progress
    from mixprec.studies import load_recipe, run_study, study_data

    say = Progress(args.quiet)
    recipe = load_recipe(args.recipe)
    out = args.out or Path("runs") / f"study-{recipe.name}"
    say(f"loading {recipe.model} and its data")
    data = study_data(recipe, args.weights, args.data)
    rows = run_study(recipe, data, out, threads=args.threads, progress=say)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    else:
        print((out / "comparison.md").read_text())
        print(f"wrote {out}/comparison.csv, comparison.md, comparison.json")
    return 0
