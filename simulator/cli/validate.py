"""``sibsim validate`` (check scenario files) and ``sibsim schema`` (print the JSON Schema)."""
from __future__ import annotations

import json

import click

from ..yamlfiles import ScenarioError
from .options import fail_invalid


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check scenario FILES against the schema; report every problem with file, line and key."""
    from ..compose import validate_files

    try:
        loaded = validate_files(files)  # also resolves extends, stresses and sweeps
    except ScenarioError as exc:
        fail_invalid(exc)
    for item, n_variants in loaded:
        more = f", {n_variants} stress and sweep variants" if n_variants else ""
        click.echo(f"ok: {item.path} ({item.scenario.name}{more})")


@click.command()
def schema() -> None:
    """Print the scenario JSON Schema (for editor autocompletion of YAML files)."""
    from ..schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
