"""Any file the model does not code ('file'): its bytes, for the byte methods only."""

from ardm_jax.codec.kinds import base


class File(base.Kind):
  name = "file"
  candidates = ("stored", "zstd", "brotli", "xz")

  def read(self, name, raw, bundle, clean):
    return base.Item(self.name, (len(raw),), None, raw, None, None)


FILE = File()
