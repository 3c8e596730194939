"""The flags of a run, built from the one request schema (pipeline/request.py): `pipeline run`,
`render` and `batch` (its command line and each line of a prompts file) add them and read
them back into a RunRequest here."""

from __future__ import annotations

import argparse
import dataclasses
from typing import get_origin

from stemforge.pipeline.request import GROUPS, RunRequest, cli_flag, request_fields, request_types


def add_request_flags(parser: argparse.ArgumentParser, groups: tuple[str, ...], skip: tuple[str, ...] = ()) -> None:
    """The flags of RunRequest's fields in `groups` (pipeline/request.py describes each once)."""
    hints = request_types()
    sections: dict[str, argparse._ActionsContainer] = {"": parser}
    for item, spec in request_fields():
        flag = cli_flag(item, spec)
        if flag is None or spec.group not in groups or item.name in skip:
            continue
        if spec.group not in sections:
            sections[spec.group] = parser.add_argument_group(GROUPS[spec.group])
        hint = hints[item.name]
        options: dict = {"dest": item.name, "help": spec.help}
        if hint is bool:
            options["action"] = "store_true"
        elif get_origin(hint) is dict:
            options.update(action="append", default=[], metavar=spec.metavar)
        else:
            default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
            # a field with its own parser keeps the text: it is parsed (and reported) with the
            # rest of the request, as one "error: --flag: ..." line
            scalar = str if spec.parse else next(t for t in getattr(hint, "__args__", (hint,)) if t is not type(None))
            options.update(type=scalar, default=default if not spec.parse or default is None else ",".join(default))
            if spec.choices:
                options["choices"] = spec.choices
            if spec.metavar:
                options["metavar"] = spec.metavar
        sections[spec.group].add_argument(flag, **options)


def request_from_args(args: argparse.Namespace, **overrides) -> RunRequest:
    """The RunRequest of parsed flags (fields without a flag on this command keep their defaults)."""
    values = {}
    for item, spec in request_fields():
        if cli_flag(item, spec) is None or not hasattr(args, item.name):
            continue
        value = getattr(args, item.name)
        if spec.parse is not None and isinstance(value, str):
            value = spec.parse(value)
        values[item.name] = value
    if values.get("instruments"):
        from stemforge.audio.render import parse_instrument_flags

        values["instruments"] = parse_instrument_flags(values["instruments"])
    else:
        values["instruments"] = {}
    return RunRequest(**{**values, **overrides})


RUN_GROUPS = ("steer", "feel", "sampling", "iterate", "", "stems")
