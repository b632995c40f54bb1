"""Builders of small real-format data files for tests (nothing is downloaded)."""
import zipfile

import numpy as np

_WORDS = ("the of and in a to is was as for on by with he that from his it at an are which this be or "
          "anarchism originated zero one two nine quick brown fox jumps over lazy dog").split()


def random_text(num_chars: int, seed: int = 0) -> str:
  """Exactly num_chars of lowercase words separated by single spaces, starting with a space like text8."""
  rng = np.random.default_rng(seed)
  pieces, length = [], 0
  while length < num_chars:
    word = " " + _WORDS[rng.integers(len(_WORDS))]
    pieces.append(word)
    length += len(word)
  return "".join(pieces)[:num_chars]


def write_text8_zip(path, text: str, member: str = "text8") -> None:
  """Writes a deflated zip holding `text` as its single member, like the real text8.zip."""
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    archive.writestr(member, text.encode("ascii"))
