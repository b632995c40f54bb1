"""Test-session setup: CPU only, two forced host devices so sharded paths always run, and one persistent XLA
compilation cache for the session (its own temporary folder), so that the many runs of the same tiny programs, in
this process and in the subprocesses the tests start, compile once."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_XLA_CACHE = tempfile.mkdtemp(prefix="ardm_tests_xla_cache_")
atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = _XLA_CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"  # Only programs worth the disk write.
# gs:// paths through fsspec/gcsfs, which honour the GCS emulator the tests start. etils.epath decides once per
# process (it caches whether TensorFlow may serve gs://), so the choice is made here, before any test runs,
# rather than by the first test that touches a gs:// path.
os.environ["EPATH_USE_TF"] = "false"
