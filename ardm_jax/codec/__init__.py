"""Lossless file compression with a trained ARDM: bundles, files in and out, rANS and classic codecs.

bundle.py     what decoding needs of a trained model (export, write, load and validate)
files.py      encode and decode files with a bundle
kinds/        one module per kind of file (text, bytes, images, audio, arrays, any file)
container.py  the compressed file format; coder.py the rANS coder; classic.py the classic codecs
"""

from ardm_jax.codec.bundle import Bundle
from ardm_jax.codec.bundle import DEFAULT_BATCH_SIZE
from ardm_jax.codec.bundle import MAX_BUNDLE_BATCH
from ardm_jax.codec.bundle import bundle_fingerprint
from ardm_jax.codec.bundle import check_bundle_target
from ardm_jax.codec.bundle import export
from ardm_jax.codec.bundle import load_bundle
from ardm_jax.codec.bundle import numerics
from ardm_jax.codec.bundle import numerics_fingerprint
from ardm_jax.codec.bundle import plan_report
from ardm_jax.codec.bundle import write_bundle
from ardm_jax.codec.errors import CodecError
from ardm_jax.codec.files import SUFFIX
from ardm_jax.codec.files import Encoded
from ardm_jax.codec.files import check_base_name
from ardm_jax.codec.files import decode_files
from ardm_jax.codec.files import encode_files
from ardm_jax.codec.files import min_payload_bits
from ardm_jax.codec.files import prepare
from ardm_jax.codec.files import read_header

__all__ = [
  "Bundle",
  "CodecError",
  "DEFAULT_BATCH_SIZE",
  "Encoded",
  "MAX_BUNDLE_BATCH",
  "SUFFIX",
  "bundle_fingerprint",
  "check_base_name",
  "check_bundle_target",
  "decode_files",
  "encode_files",
  "export",
  "load_bundle",
  "min_payload_bits",
  "numerics",
  "numerics_fingerprint",
  "plan_report",
  "prepare",
  "read_header",
  "write_bundle",
]
