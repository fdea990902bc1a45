"""The compiled needle search (src/kubehawk/_needles.c) answers as Python's ``in`` does."""

from __future__ import annotations

import random

import pytest

from kubehawk import native
from kubehawk.rules.compiler import _key_searcher

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
