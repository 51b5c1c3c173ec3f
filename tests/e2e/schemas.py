"""The JSON Schemas in ``schemas/``: every ``--json`` output of the e2e tier is checked
against them, so that a field added, renamed or retyped must be added to its schema."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .helpers import Result, assert_ok

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@functools.cache
def registry() -> Registry[Any]:
    """Every schema, by file name: the schemas refer to each other by relative file name."""
    return Registry().with_resources(
        (path.name, Resource.from_contents(json.loads(path.read_text()),
                                           default_specification=DRAFT202012))
        for path in sorted(SCHEMAS.glob("*.schema.json"))
    )


def check(document: Any, schema: str) -> Any:
    """``document`` if it is valid against ``schemas/<schema>.schema.json``, else fail
    naming each problem and where it is."""
    contents = registry().contents(f"{schema}.schema.json")
    validator = Draft202012Validator(contents, registry=registry(),
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, f"{schema}: " + "; ".join(
        f"at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:5])
    return document


def json_of(result: Result, schema: str) -> Any:
    """The JSON a successful command printed, checked against its schema."""
    return check(json.loads(assert_ok(result)), schema)
