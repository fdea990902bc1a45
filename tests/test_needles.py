"""The compiled needle search (src/kubehawk/_needles.c) answers as Python's ``in`` does."""

from __future__ import annotations

import random

import pytest

from kubehawk import native
from kubehawk.rules.needles import _key_searcher

pytestmark = pytest.mark.skipif(native.needles is None, reason="the compiled parts are off (KUBEHAWK_NATIVE=0)")


def _expected(keys: tuple[bytes, ...], raw: bytes, fold: bool) -> list[int]:
    text = raw.lower() if fold else raw
    return [i for i, k in enumerate(keys) if k in text]


def test_random_needles_and_haystacks_agree_with_in():
    rng = random.Random(3)
    alphabet = b'abcAB"{}:,pPhHxyz\\\x00\xff'  # few symbols: many partial and overlapping matches
    for _ in range(20_000):
        keys = tuple(bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 10)))
        fold = rng.random() < 0.5
        if fold:
            keys = tuple(k.lower() for k in keys)
        raw = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert sorted(native.needles.Needles(keys, fold).search(raw)) == _expected(keys, raw, fold), (keys, raw, fold)


def test_long_bodies_and_the_vector_path_agree_with_in():
    rng = random.Random(4)
    words = [b"privileged", b"hostPID", b"hostIPC", b"hostNetwork", b"path", b"add", b"command", b"args",
             b"PASSWORD", b"api_key", b"Begin RSA Private Key"]
    for _ in range(2_000):
        keys = tuple(rng.sample(words, rng.randint(1, len(words))))
        fold = rng.random() < 0.5
        if fold:
            keys = tuple(k.lower() for k in keys)
        filler = [b'{"spec":{"containers":[{"name":"', b'"image":"nginx"', b"hos", b"pat", b"ad", b"x" * 17,
                  *rng.sample(words, 3)]
        raw = b"".join(rng.choice(filler) for _ in range(rng.randint(0, 200)))
        assert sorted(native.needles.Needles(keys, fold).search(raw)) == _expected(keys, raw, fold)


def test_the_rule_compiler_uses_it_and_accepts_any_bytes_like_body():
    keys = (b"hostpid", b"path")
    search = _key_searcher(keys)
    assert sorted(search(b'{"hostpid":true,"volumes":[{"hostPath":{}}]}')) == [0]
    assert sorted(search(memoryview(b"a path"))) == [1]
    assert sorted(_key_searcher(keys, fold=True)(b"HOSTPID and PATH")) == [0, 1]


def test_bad_arguments_are_errors_not_crashes():
    with pytest.raises(TypeError):
        native.needles.Needles(("a",))
    with pytest.raises(ValueError):
        native.needles.Needles(tuple(b"k%d" % i for i in range(65)))
    with pytest.raises(TypeError):
        native.needles.Needles((b"a",)).search("text")


def _python_values(raw: bytes, key: bytes) -> list | None:
    """kubehawk.rules.body._Body._scan's loop with the compiled part off."""
    from kubehawk.rules import body as body_module

    body = body_module._Body(raw)
    body._escaped = False  # the caller's test; the loop itself is compared here
    saved = native.needles
    try:
        native.needles = None
        return body._scan(key, False, False)
    finally:
        native.needles = saved


def test_written_values_agree_with_the_python_loop():
    from kubehawk.rules.body import _OBJECT

    rng = random.Random(5)
    pieces = [b'"image":', b'"image"', b'"nginx"', b'"a\xc3\xa9"', b'"\xff"', b"true", b"false", b"null", b"{",
              b"}", b"[", b"1", b" ", b",", b'"', b'"images":', b'"image": "x"', b'"name":"image"', b"t", b"nul"]
    for _ in range(20_000):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        got = native.needles.written_values(raw, b"image", _OBJECT)
        expected = _python_values(raw, b"image")
        assert got == expected, raw
        if got:
            assert all(v is _OBJECT for v, e in zip(got, expected, strict=True) if e is _OBJECT)


def test_written_values_of_real_pod_specs(tmp_path):
    import json

    from kubehawk.rules.body import _OBJECT

    spec = {"spec": {"containers": [{"name": "a", "image": "nginx:1.27", "securityContext": {"privileged": True}},
                                    {"name": "b", "image": "registry.example.com/x:1"}],
                     "hostPID": False, "volumes": [{"name": "v", "hostPath": {"path": "/etc"}}]}}
    raw = json.dumps(spec, separators=(",", ":")).encode()
    for key in (b"image", b"privileged", b"hostPID", b"hostPath", b"path", b"missing"):
        assert native.needles.written_values(raw, key, _OBJECT) == _python_values(raw, key), key
    assert native.needles.written_values(raw, b"image", _OBJECT) == ["nginx:1.27", "registry.example.com/x:1"]
    with pytest.raises(TypeError):
        native.needles.written_values("text", b"image", _OBJECT)
