"""kubehawk.jsonsplit: the members of a JSON array or object, found without recursing."""

from __future__ import annotations

import json

import msgspec

from kubehawk.jsonsplit import split


def texts(data: bytes, pos: int = 0) -> tuple[str, list[tuple[str | None, bytes]]] | None:
    found = split(data, pos)
    return None if found is None else (found.kind, [(m.key, data[m.start:m.end]) for m in found.members])


def test_members_of_arrays_and_objects_with_strings_that_look_like_structure():
    assert texts(b'  [1, "a,]\\"[" , {"x": [1, 2]}, []]') == (
        "array", [(None, b"1"), (None, b'"a,]\\"["'), (None, b'{"x": [1, 2]}'), (None, b"[]")])
    assert texts(b'{"kind": "EventList", "a\\"b": {"}": ","}, "items": [ {"a": 1} ]}') == (
        "object", [("kind", b'"EventList"'), ('a"b', b'{"}": ","}'), ("items", b'[ {"a": 1} ]')])
    assert texts(b"[]") == ("array", []) and texts(b"{ }") == ("object", [])


def test_where_it_ends_and_what_it_refuses():
    data = b'{"a": 1}  {"b": 2}'
    first = split(data)
    assert first.end == 8 and split(data, first.end).members[0].key == "b"
    for bad in (b"[1, 2", b'{"a": "open]', b"", b"  ", b"42", b'"text"'):
        assert split(bad) is None, bad


def test_a_member_too_deep_for_the_decoder_is_found_whole():
    deep = b"[" * 20000 + b"]" * 20000
    data = b'{"kind": "EventList", "items": [{"a": 1}, ' + deep + b', {"b": 2}]}'
    _, members = texts(data)
    items = dict(members)["items"]
    _, elements = texts(items)
    assert [e for _, e in elements] == [b'{"a": 1}', deep, b'{"b": 2}']
    assert msgspec.json.decode(elements[2][1]) == {"b": 2}


def test_agrees_with_the_decoder_on_ordinary_documents():
    doc = {"kind": "EventList", "items": [{"verb": "get", "n": [1, {"x": "]["}]}, "s", 3.5, None, True],
           "meta": {"k": "v"}}
    data = json.dumps(doc, indent=2).encode()
    _, members = texts(data)
    assert {k: json.loads(v) for k, v in members} == doc
