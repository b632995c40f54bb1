"""The data kinds of compressed files, one module each behind one interface (base.Kind); this registry is the
only place that maps a container kind, or an input file and a bundle, to its module. A new kind is one module
and one line here."""

from ardm_jax.codec.kinds import array
from ardm_jax.codec.kinds import audio
from ardm_jax.codec.kinds import base
from ardm_jax.codec.kinds import file
from ardm_jax.codec.kinds import image
from ardm_jax.codec.kinds import text

Item = base.Item
Kind = base.Kind
KINDS: dict[str, base.Kind] = {
  k.name: k for k in (text.TEXT, text.BYTES, image.RGB, image.GRAY, array.ARRAY, file.FILE, audio.AUDIO)
}
# The kind that reads a file for a bundle of each kind (.npy files are arrays whatever the bundle).
READERS = {"text": text.TEXT, "bytes": text.BYTES, "image": image.RGB, "audio": audio.AUDIO}
FILE = file.FILE


def reader(file_name: str, bundle_kind: str) -> base.Kind:
  """The kind that reads `file_name` for a bundle of `bundle_kind`."""
  return array.ARRAY if file_name.endswith(".npy") else READERS[bundle_kind]
