"""Which way imports run between the sub-packages (docs/design.md#layout): the maths knows no files, networks
know no objective, data knows no networks. A wrong import fails here, named with its file and line."""

import ast
import pathlib
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "ardm_jax"
STDLIB = set(sys.stdlib_module_names)
# package -> (third-party roots it may import, or None for any; ardm_jax packages it must not import)
RULES = {
  "core": ({"jax", "numpy"}, {"training", "codec", "cli", "data", "models", "io"}),
  "models": (None, {"core", "training", "codec", "cli", "data", "io"}),
  "data": (None, {"models", "training", "codec", "cli"}),
  "io": (None, {"core", "models", "data", "training", "codec", "cli"}),
  "training": (None, {"codec", "cli"}),
  "codec": (None, {"cli"}),
}


def _imports(source: str):
  """(line, module) of every import of a module's source, `from a.b import c` as 'a.b.c' and 'a.b'."""
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.lineno, node.module
      for alias in node.names:
        yield node.lineno, f"{node.module}.{alias.name}"


def violations(package: str, source: str, where: str) -> list[str]:
  """The imports of one module of `package` that its rule forbids, as 'where:line imports module'."""
  allowed_third_party, forbidden = RULES[package]
  found = []
  for line, module in _imports(source):
    parts = module.split(".")
    if parts[0] == "ardm_jax":
      if len(parts) > 1 and parts[1] in forbidden:
        found.append(f"{where}:{line} imports {module}")
    elif allowed_third_party is not None and parts[0] not in allowed_third_party | STDLIB:
      found.append(f"{where}:{line} imports {module}")
  return sorted(set(found))


@pytest.mark.parametrize("package", list(RULES))
def test_imports_run_one_way(package):
  files = sorted((PACKAGE / package).rglob("*.py"))
  assert files
  found = [v for f in files for v in violations(package, f.read_text(), str(f.relative_to(PACKAGE.parent)))]
  assert found == [], "imports against the layout (docs/design.md#layout):\n" + "\n".join(found)


@pytest.mark.parametrize(
  "package, source, culprit",
  [
    ("core", "from ardm_jax.training import train\n", "ardm_jax.training"),
    ("core", "import flax.linen as nn\n", "flax.linen"),
    ("models", "from ardm_jax.core import objective\n", "ardm_jax.core"),
    ("data", "from ardm_jax import models\n", "ardm_jax.models"),
    ("data", "from ardm_jax.models import unet\n", "ardm_jax.models"),
  ],
)
def test_a_wrong_import_is_named_with_its_line(package, source, culprit):
  found = violations(package, "import os\n\n" + source, "x.py")
  assert found and found[0].startswith("x.py:3 imports " + culprit)


def test_no_package_has_more_than_about_ten_modules():
  for folder in [PACKAGE, *(p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())]:
    modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= 10, (folder, sorted(p.name for p in modules))
