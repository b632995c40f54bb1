"""The run config's schema: every key, its allowed values, and which keys each data source, model and objective kind
uses; `validate(config)` checks a config before anything is built. A new config key is added both to configs/common.py
(its default) and here (its rule). Design notes: docs/design.md#config_schema
"""

import dataclasses
import numbers
from typing import Any, Callable, Mapping, Union


from ardm_jax.models import layers


class ConfigError(ValueError):
  """A config value or input file no run can use; the message names the key or file and the fix."""


@dataclasses.dataclass(frozen=True)
class Rule:
  """What one key's value must be: of `kind` ('integer', 'number', 'bool', 'string') and satisfy `ok`."""

  kind: str
  requirement: str  # Completes "config.key = v, but it ...", e.g. "must be > 0".
  ok: Callable[[Any], bool] = lambda value: True
  optional: bool = False  # None means "not set yet" (sample.budget): checked later, against the data.
  # A key added after workdirs were trained with configs that lack it: absent means its default (readers use
  # section.get(key, default)).
  absent_ok: bool = False


@dataclasses.dataclass(frozen=True)
class Choice:
  """A key whose value picks the other keys its section has: options[value] maps each of those keys to its
  Rule (or to a further Choice)."""

  options: Mapping[str, Mapping[str, Union[Rule, "Choice"]]]


_KINDS = {
  "integer": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
  "number": lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool),
  "bool": lambda v: isinstance(v, bool),
  "string": lambda v: isinstance(v, str),
}
_KIND_NAMES = {"integer": "an integer", "number": "a number", "bool": "True or False", "string": "a string"}


def at_least(low, kind: str = "integer", why: str = "") -> Rule:
  return Rule(kind, f"must be >= {low}{why}", lambda v: v >= low)


def above(low, kind: str = "integer") -> Rule:
  return Rule(kind, f"must be > {low}", lambda v: v > low)


def in_range(low, high, kind: str = "integer") -> Rule:
  return Rule(kind, f"must be in [{low}, {high}]", lambda v: low <= v <= high)


def one_of(*choices: str) -> Rule:
  return Rule("string", f"is not one of {list(choices)}", lambda v: v in choices)


POSITIVE = above(0)
NON_NEGATIVE = at_least(0)
POSITIVE_NUMBER = above(0, "number")
NON_NEGATIVE_NUMBER = at_least(0, "number")
UNIT_INTERVAL = Rule("number", "must be in [0, 1)", lambda v: 0 <= v < 1)
BOOL = Rule("bool", "must be True or False")
STRING = Rule("string", "must be a string")
TEXT8_ZIP = Rule("string", "must be the path of text8.zip (http://mattmahoney.net/dc/text8.zip)", lambda v: v != "")
FILES_PATH = Rule(
  "string", "must name a folder or glob of your files (local, ~/... or gs://...)", lambda v: v.strip() != ""
)
OPEN_UNIT_INTERVAL = Rule("number", "must be in (0, 1)", lambda v: 0 < v < 1)
SC09_FOLDER = Rule(
  "string", "must be the extracted Speech Commands folder (zero/ .. nine/, testing_list.txt)", lambda v: v != ""
)
# Network calls per stage: 1..D, checked once D is known (check_against_data); unset is allowed until then.
BUDGET = Rule("integer", "must lie in 1..D (D = variables per data point)", optional=True)
DTYPE = one_of("float32", "bfloat16")

_TEXT_SOURCE = {"seed": NON_NEGATIVE, "seq_len": in_range(1, 1000)}  # 1000: the length of a training chunk.
_IMAGE_SOURCE = {"seed": NON_NEGATIVE, "augment": BOOL, "eval_split": one_of("test")}
DATA = Choice(
  {
    "cifar10": {**_IMAGE_SOURCE, "tfds_data_dir": STRING, "download": BOOL},
    "embedded_images": {**_IMAGE_SOURCE, "image_size": POSITIVE, "downscale": POSITIVE},
    "embedded_photos": {**_IMAGE_SOURCE, "image_size": POSITIVE},
    "text8": {**_TEXT_SOURCE, "path": TEXT8_ZIP, "eval_split": one_of("test", "valid")},
    "embedded_text": {**_TEXT_SOURCE, "eval_split": one_of("test")},
    "embedded_bytes": {**_TEXT_SOURCE, "eval_split": one_of("test")},
    "sc09": {"seed": NON_NEGATIVE, "path": SC09_FOLDER, "eval_split": one_of("test", "valid")},
    "embedded_audio": {"seed": NON_NEGATIVE, "clip_len": in_range(1, 16000), "eval_split": one_of("test")},
    "files": {
      "seed": NON_NEGATIVE,
      "path": FILES_PATH,
      "test_fraction": OPEN_UNIT_INTERVAL,
      "eval_split": one_of("test"),
      "kind": Choice(
        {
          "text": {"seq_len": _TEXT_SOURCE["seq_len"]},
          "bytes": {"seq_len": _TEXT_SOURCE["seq_len"]},
          "images": {"image_size": POSITIVE, "augment": BOOL},
        }
      ),
    },
  }
)

_NETWORK = {
  "num_heads": POSITIVE,
  "dropout": UNIT_INTERVAL,
  "dtype": DTYPE,
  "attention": one_of(*layers.ATTENTION),
  "remat": one_of("none", *layers.REMAT_POLICIES),
}
# The network's architecture (models/*.py ARCHS); configs older than the switch hold the paper's.
ARCH = dataclasses.replace(one_of(*layers.ARCH_NAMES), absent_ok=True)
MODEL = Choice(
  {
    "unet": {
      **_NETWORK,
      "ch": Rule("integer", "must be a positive multiple of 4", lambda v: v > 0 and v % 4 == 0),
      "num_res_blocks": POSITIVE,
      "attn_everywhere": BOOL,
      "arch": ARCH,
    },
    "transformer": {**_NETWORK, "num_layers": POSITIVE, "width": POSITIVE, "mlp_dim": POSITIVE, "arch": ARCH},
    # Convolutions only: no attention keys.
    "diffwave": {
      "dropout": _NETWORK["dropout"],
      "dtype": DTYPE,
      "remat": _NETWORK["remat"],
      "ch": POSITIVE,
      "num_blocks": POSITIVE,
      "dilation_cycle": in_range(1, 20),
      "use_step": BOOL,
      "arch": ARCH,
    },
  }
)

_LOSS = {
  "ce_weight": NON_NEGATIVE_NUMBER,
  "antithetic": BOOL,
  # 0: categorical outputs; M >= 1: a discretized logistic mixture of M components over the K classes (SC09).
  "num_mixtures": Rule("integer", "must be >= 0 (0 = categorical)", lambda v: v >= 0, absent_ok=True),
}
OBJECTIVE = Choice(
  {
    "oa": {**_LOSS, "absorbing_value": NON_NEGATIVE},
    "upscale": {
      **_LOSS,
      "parametrisation": one_of("direct", "data"),
      "transitions": Choice(
        {
          "digits": {"branching": at_least(2, why=" (each upscale stage chooses among b >= 2 refinements)")},
          "text8": {},
        }
      ),
    },
  }
)

SCHEMA = {
  "seed": NON_NEGATIVE,
  "data": {"name": DATA},
  "model": {"name": MODEL},
  "objective": {"kind": OBJECTIVE},
  "optimizer": {
    "name": one_of("adam", "adamw"),
    "learning_rate": NON_NEGATIVE_NUMBER,
    "warmup_steps": NON_NEGATIVE,
    "b1": UNIT_INTERVAL,
    "b2": UNIT_INTERVAL,
    "weight_decay": NON_NEGATIVE_NUMBER,
    "grad_clip_norm": POSITIVE_NUMBER,
    "ema_decay": UNIT_INTERVAL,
  },
  "training": {
    "batch_size": POSITIVE,
    "num_train_steps": POSITIVE,
    "log_every_steps": POSITIVE,
    "eval_every_steps": POSITIVE,
    "checkpoint_every_steps": POSITIVE,
    "max_checkpoints_to_keep": POSITIVE,
    "tracker_momentum": UNIT_INTERVAL,
    "on_nonfinite": one_of("stop", "skip"),
    "grad_accum_steps": POSITIVE,
    "compilation_cache_dir": STRING,
    "profile_steps": NON_NEGATIVE,
  },
  "eval": {
    "batch_size": POSITIVE,
    "num_passes": POSITIVE,
    "max_batches": NON_NEGATIVE,
    # --mode=plan: the budgets whose likelihood is measured ('1,5,10,20,D'), and on how many test points.
    "plan_budgets": Rule("string", "must list budgets, e.g. '1,5,10,20,D'", lambda v: v.strip() != "", absent_ok=True),
    "plan_points": Rule("integer", "must be >= 1", lambda v: v >= 1, absent_ok=True),
  },
  "sample": {
    "budget": BUDGET,
    "num_samples": POSITIVE,
    "seed": NON_NEGATIVE,
    # Conditional generation (infill.py): a text with mask characters / a prompt, or a PNG (and its mask).
    "prompt": Rule("string", "must be a path ('' = sample from nothing)", absent_ok=True),
    "mask": Rule("string", "must be the path of a mask PNG ('' = none)", absent_ok=True),
    "mask_char": Rule("string", "must be one ASCII character", lambda v: len(v) == 1 and v.isascii(), absent_ok=True),
  },
  "compress": {"budget": BUDGET, "num_examples": POSITIVE, "order_seed": NON_NEGATIVE},
}


def _check_value(key: str, value, rule: Rule) -> None:
  if value is None:
    if rule.optional:
      return
    raise ConfigError(f"config.{key} is not set; it is required and {rule.requirement} (--config.{key}=...).")
  if not _KINDS[rule.kind](value):
    raise ConfigError(
      f"config.{key} = {value!r} ({type(value).__name__}), but it must be "
      f"{_KIND_NAMES[rule.kind]}; fix it with --config.{key}=..."
    )
  if not rule.ok(value):
    if rule.requirement.startswith("is not one of"):
      raise ConfigError(f"config.{key} = {value!r} {rule.requirement}; pick one with --config.{key}=...")
    raise ConfigError(f"config.{key} = {value!r}, but it {rule.requirement}; fix it with --config.{key}=...")


def _keys_of(rules: Mapping[str, Any]) -> set[str]:
  """The keys of one option, with those of every option of a Choice inside it."""
  keys = set(rules)
  for rule in rules.values():
    if isinstance(rule, Choice):
      keys = keys.union(*(_keys_of(option_rules) for option_rules in rule.options.values()))
  return keys


def _validate_section(section, spec: Mapping[str, Any], prefix: str) -> None:
  """Checks one nested section: its keys are exactly those `spec` gives after resolving its Choices."""
  if not hasattr(section, "keys"):
    raise ConfigError(f"config.{prefix[:-1]} = {section!r} must be a section (a ConfigDict), as in configs/common.py.")
  rules, chosen, pending = {}, [], list(spec.items())
  while pending:
    key, rule = pending.pop(0)
    if isinstance(rule, Choice):
      if key not in section:
        context = "".join(f" for {prefix}{k}={v!r}" for k, v, _ in chosen)
        raise ConfigError(
          f"config.{prefix}{key} is missing{context}; add it to the config file (one of "
          f"{list(rule.options)}; configs/common.py builds every section)."
        )
      value = section[key]
      if value not in rule.options:
        raise ConfigError(
          f"config.{prefix}{key} = {value!r} is not one of {list(rule.options)}; pick one with "
          f"--config.{prefix}{key}=..."
        )
      chosen.append((key, value, rule))
      rules[key] = None
      pending.extend(rule.options[value].items())
    else:
      rules[key] = rule
  selected_by = " and ".join(f"{prefix}{key}={value!r}" for key, value, _ in chosen) or (
    f"config.{prefix[:-1]}" if prefix else "the config"
  )
  for key in section.keys():
    if key in rules:
      continue
    owners = [
      f"{prefix}{selector}={option!r}"
      for selector, value, choice in chosen
      for option, option_rules in choice.options.items()
      if option != value and key in _keys_of(option_rules)
    ]
    if owners:
      raise ConfigError(
        f"config.{prefix}{key} is not used with {selected_by} (only with {', '.join(owners)}); "
        f"remove it from the config."
      )
    raise ConfigError(
      f"config.{prefix}{key} is not a key of {selected_by}; remove or rename it (its keys: {', '.join(rules)})."
    )
  for key, rule in rules.items():
    if key not in section and isinstance(rule, Rule) and rule.absent_ok:
      continue
    if key not in section:
      raise ConfigError(
        f"config.{prefix}{key} is missing for {selected_by}; add it to the config file "
        "(configs/common.py has its default)."
      )
    if isinstance(rule, Mapping):
      _validate_section(section[key], rule, f"{prefix}{key}.")
    elif rule is not None:
      _check_value(prefix + key, section[key], rule)


def validate(config) -> None:
  """Raises ConfigError naming the key and the fix for the first value no run can use.

  Checks the keys (none missing, none unknown, none the chosen data source / model / objective kind does not
  use), the type and range of every value, and relations between keys (attention heads dividing the width).
  """
  _validate_section(config, SCHEMA, "")
  objective = config.objective
  if objective.get("num_mixtures", 0) and objective.kind == "upscale":
    if objective.parametrisation != "data" or objective.transitions != "digits":
      raise ConfigError(
        f"config.objective.num_mixtures = {objective.num_mixtures}: a logistic mixture covers the K classes, so an "
        "upscale ARDM needs --config.objective.parametrisation=data and --config.objective.transitions=digits "
        "(or --config.objective.num_mixtures=0 for categorical outputs)."
      )
  model = config.model
  width_key = "width" if model.name == "transformer" else "ch"
  if "num_heads" in model and model[width_key] % model.num_heads:
    raise ConfigError(
      f"config.model.num_heads = {model.num_heads} does not divide config.model.{width_key} = "
      f"{model[width_key]} (each attention head gets width / num_heads features); fix one of "
      f"them with --config.model.num_heads=... or --config.model.{width_key}=..."
    )


def validate_network(config) -> None:
  """The checks of validate() on the sections that build the network (model, objective), for a codec bundle."""
  for section in ("model", "objective"):
    if section not in config:
      raise ConfigError(f"config.{section} is missing; add it to the config file (configs/common.py builds it).")
    _validate_section(config[section], SCHEMA[section], f"{section}.")


def check_against_data(config, num_variables: int, num_classes: int) -> None:
  """The checks that need the data: D = num_variables per data point, K = num_classes values per variable."""
  for key in ("sample.budget", "compress.budget"):
    section, name = key.split(".")
    budget = config[section][name]
    if budget is None or not 1 <= budget <= num_variables:
      raise ConfigError(
        f"config.{key} = {budget} network calls per stage, but it is required and must "
        f"lie in 1..D with D = {num_variables} variables per data point (D: one call per "
        f"variable); set it with --config.{key}=..."
      )
  objective = config.objective
  if objective.kind == "oa" and not 0 <= objective.absorbing_value <= num_classes:
    raise ConfigError(
      f"config.objective.absorbing_value = {objective.absorbing_value} is outside "
      f"0..{num_classes} for {num_classes}-class data; use {num_classes} (an extra token, as for "
      f"text) or a mid-range value (images: 128) with --config.objective.absorbing_value=..."
    )
  if objective.kind == "upscale" and objective.transitions == "text8" and num_classes != 27:
    raise ConfigError(
      f"config.objective.transitions = 'text8' needs the 27 text8 classes, the data has "
      f"{num_classes}; use --config.objective.transitions=digits."
    )


def check_batch_divisibility(config, num_devices: int) -> None:
  for section in ("training", "eval"):
    batch_size = config[section].batch_size
    if batch_size % num_devices:
      raise ConfigError(
        f"config.{section}.batch_size = {batch_size} is not divisible by the {num_devices} "
        f"devices of the mesh; use a multiple of {num_devices} "
        f"(--config.{section}.batch_size=...)."
      )
  accum = config.training.grad_accum_steps
  if config.training.batch_size % (accum * num_devices):
    raise ConfigError(
      f"config.training.batch_size = {config.training.batch_size} is not divisible by "
      f"training.grad_accum_steps ({accum}) x {num_devices} devices; every micro-batch must split "
      "evenly over the devices (--config.training.grad_accum_steps=...)."
    )
