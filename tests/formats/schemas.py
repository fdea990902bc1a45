"""Checks of our ECS and OCSF output against the official definitions, not a list from memory.

ECS: the field list Elastic publishes (``ecs_flat`` of npm ``@elastic/ecs`` 9.4.0; no PyPI
package carries it), fetched by ``make schemas`` into build/schemas/ecs_flat.json.
OCSF: the OCSF 1.5.0 schema as exported by schema.ocsf.io, shipped by PyPI ``ocsf-json-schema``,
as a JSON Schema (Draft 2020-12) for the Detection Finding class, unknown attributes forbidden.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from typing import Any

import pytest

from kubehawk.formats import parse_time

from helpers import REPO

ECS_FLAT = REPO / "build" / "schemas" / "ecs_flat.json"
_STRING_TYPES = {"keyword", "constant_keyword", "wildcard", "match_only_text", "text"}


@functools.lru_cache(maxsize=1)
def ecs_fields() -> dict[str, Any]:
    if not ECS_FLAT.exists():
        pytest.skip(f"ECS FIELD CHECK SKIPPED: {ECS_FLAT} is missing; run `make schemas` (npm pack @elastic/ecs)")
    return json.loads(ECS_FLAT.read_text())


def _leaves(doc: dict[str, Any], fields: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in doc.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and fields.get(path, {}).get("type") not in ("object", "flattened", "nested"):
            out.extend(_leaves(v, fields, path + "."))
        else:
            out.append((path, v))
    return out


def _type_error(spec: dict[str, Any], value: Any) -> str | None:
    t = spec["type"]
    if isinstance(value, list):
        if "array" not in spec.get("normalize", []):
            return f"a list, but ECS does not mark the field as an array ({t})"
        values = value
    else:
        values = [value]
    for v in values:
        if t in _STRING_TYPES and not isinstance(v, str):
            return f"expected a string ({t}), got {v!r}"
        if t == "ip":
            try:
                ipaddress.ip_address(v)
            except ValueError:
                return f"expected an IP address, got {v!r}"
        if t == "date" and (not isinstance(v, str) or parse_time(v) is None):
            return f"expected a date, got {v!r}"
        if t == "long" and (isinstance(v, bool) or not isinstance(v, int)):
            return f"expected an integer, got {v!r}"
        if t in ("float", "scaled_float", "double") and (isinstance(v, bool) or not isinstance(v, int | float)):
            return f"expected a number, got {v!r}"
        allowed = [a["name"] for a in spec.get("allowed_values") or []]
        if allowed and v not in allowed:
            return f"{v!r} is not one of the allowed values {allowed}"
    return None


def ecs_errors(doc: dict[str, Any]) -> list[str]:
    """Every field of ``doc`` that is not an ECS field, or whose value does not fit its type."""
    fields = ecs_fields()
    errors = []
    for path, value in _leaves(doc, fields):
        spec = fields.get(path)
        if spec is None:
            errors.append(f"{path}: not an ECS field")
            continue
        why = _type_error(spec, value)
        if why:
            errors.append(f"{path}: {why}")
    for cat in (doc.get("event") or {}).get("category") or []:
        expected = next((a.get("expected_event_types") or [] for a in fields["event.category"]["allowed_values"]
                         if a["name"] == cat), [])
        errors.extend(f"event.type {t!r} is not expected with event.category {cat!r}"
                      for t in (doc.get("event") or {}).get("type") or [] if expected and t not in expected)
    return errors


@functools.lru_cache(maxsize=1)
def ocsf_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="OCSF CHECK SKIPPED: jsonschema missing; run `make dev`")
    ojs = pytest.importorskip("ocsf_json_schema", reason="OCSF CHECK SKIPPED: ocsf-json-schema missing; run `make dev`")
    schema = ojs.OcsfJsonSchemaEmbedded(ojs.get_ocsf_schema(version="1.5.0"))
    cls = schema.get_class_schema(class_name=schema.lookup_class_name_from_uid(class_uid=2004), profiles=[])
    return jsonschema.Draft202012Validator(cls)


def ocsf_errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in ocsf_validator().iter_errors(doc)]
