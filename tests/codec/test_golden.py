"""Golden files: compressed files written once (tests/codec/golden/write.py), one per data kind and per method, which
this version must decode to their originals byte for byte. A change of the format must bump container.VERSION
and rewrite them on purpose."""

import pathlib

import pytest

from ardm_jax import codec
from ardm_jax.codec import container
from ardm_jax.codec import kinds

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
FILES = sorted((GOLDEN / "files").rglob("*" + codec.SUFFIX))


def test_the_golden_files_cover_every_kind_and_every_method():
  headers = [container.unpack(f.name, f.read_bytes())[0] for f in FILES]
  assert {h.kind for h in headers} == set(kinds.KINDS) == set(container.KINDS)
  assert {h.method for h in headers} == set(container.METHODS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_golden_file_decodes_to_its_original(path):
  bundle = codec.load_bundle(GOLDEN / "bundles" / path.parent.name)
  decoded = codec.decode_files(bundle, {path.name: path.read_bytes()})[path.name]
  assert decoded == path.with_name(path.name[: -len(codec.SUFFIX)]).read_bytes()
