"""The codec's one error: an input, bundle or compressed file that cannot be used (one line naming it and the fix)."""


class CodecError(ValueError):
  """An input, bundle or compressed file that cannot be used; the message names the file and the fix."""
