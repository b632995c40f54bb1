"""Lossless file compression with a trained ARDM: bundles, the container format, rANS and classic codecs."""

from ardm_jax.codec.api import *  # noqa: F401,F403
from ardm_jax.codec.api import _bundle_fingerprint  # noqa: F401
