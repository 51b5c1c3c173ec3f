"""The JSON Schemas in ``schemas/``: valid draft 2020-12, closed (a new field must be added
to its schema), and in step with the TypedDicts the CLI builds its documents from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from queuectl.cli import jsonout

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
FILES = sorted(SCHEMAS.glob("*.schema.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return data


def objects(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema that describes an object with named properties."""
    if isinstance(node, dict):
        if "properties" in node:
            yield where or "(root)", node
        for key, value in node.items():
            yield from objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from objects(value, f"{where}/{i}")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_schema_is_valid_and_closed(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    for where, node in objects(schema):
        assert node.get("additionalProperties") is False, f"{path.name}{where} is open"
        if path.name != "redis-status.schema.json" or where != "/properties/info":
            # Every field is always printed (null when not known); INFO may lack some.
            assert set(node["required"]) == set(node["properties"]), f"{path.name}{where}"


def test_the_schemas_cover_every_command_with_json() -> None:
    assert {p.name.removesuffix(".schema.json") for p in FILES} == {
        "common", "job", "job-list", "show", "wait", "status", "worker-list", "config-list",
        "config-get", "quarantine-list", "enqueue-file", "doctor", "redis-status"}


@pytest.mark.parametrize(("typed", "properties"), [
    (jsonout.JobJson, load("job")["properties"]),
    (jsonout.WorkerJson, load("worker-list")["$defs"]["worker"]["properties"]),
    (jsonout.StatusJson, load("status")["properties"]),
    (jsonout.QueueJson, load("status")["properties"]["queues"]["items"]["properties"]),
    (jsonout.TotalsJson, load("common")["$defs"]["totals"]["properties"]),
    (jsonout.WaitJson, load("wait")["properties"]),
    (jsonout.WaitedJson, load("wait")["properties"]["jobs"]["items"]["properties"]),
    (jsonout.ConfigGetJson, load("config-get")["properties"]),
    (jsonout.QuarantinedJson, load("quarantine-list")["items"]["properties"]),
], ids=lambda v: getattr(v, "__name__", ""))
def test_the_typed_documents_have_the_schemas_fields(typed: Any,
                                                      properties: dict[str, Any]) -> None:
    assert set(typed.__required_keys__) == set(properties)


def test_config_list_names_every_policy_key() -> None:
    from queuectl.core.policy import POLICY_KEYS

    assert set(load("config-list")["properties"]) == set(POLICY_KEYS)
    assert load("config-get")["properties"]["key"]["enum"] == list(POLICY_KEYS)
