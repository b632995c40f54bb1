r"""The paper's findings at CPU scale: small versions of each experiment trained on the embedded data, one table
with the paper's number, its claim, what was measured here (mean +- standard error) and a verdict per claim.

  python benchmarks/paper_claims.py                  # every group; resumes from the workdirs of a killed run
  python benchmarks/paper_claims.py --groups=text --steps_scale=0.01 --eval_passes=1   # a smoke run
  python benchmarks/paper_claims.py --groups=compression --steps_scale=4 --workdir_root=/tmp/c4 --out=/tmp/c4.json
      # what closes a gap: longer training (or --override=data.image_size=16, --override=model.ch=64)

The experiments are configs/claims.py's variants (equal training steps within a group). Verdicts: 'holds' if the
measured difference has the paper's sign by more than twice its standard error, 'does not hold at this scale'
if the opposite sign by as much, else 'undecided within error'. Writes benchmarks/results/paper_claims.json and
paper_claims.md; the workdirs (checkpoints, bundles) go to --workdir_root.
"""

import functools
import io
import json
import math
import pathlib
import sys
import time

# The repository root instead of benchmarks/ on the path: benchmarks/compression.py would shadow the
# `compression` module that jax's compilation cache imports.
sys.path.pop(0)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from ardm_jax import codec  # noqa: E402
from ardm_jax.codec import classic  # noqa: E402
from ardm_jax.codec import container  # noqa: E402
from ardm_jax.core import planner  # noqa: E402
from ardm_jax.data import images as images_lib  # noqa: E402
from ardm_jax.data import media  # noqa: E402
from ardm_jax.io import outputs  # noqa: E402
from ardm_jax.training import inference  # noqa: E402
from ardm_jax.training import train  # noqa: E402
from ardm_jax.training import workdir as workdir_lib  # noqa: E402
from configs import claims  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("groups", ["text", "images", "audio", "compression"], "Groups of experiments to run.")
flags.DEFINE_float("steps_scale", 1.0, "Multiplies every variant's training steps (smoke runs).")
flags.DEFINE_integer("eval_passes", 8, "Evaluation passes over the held-out set.")
flags.DEFINE_integer("plan_points", 0, "Test points of the measured plans (0: the config's).")
flags.DEFINE_integer("crop", 32, "Side of the held-out crops coded one per file (CIFAR's 32).")
flags.DEFINE_integer("max_crops", 0, "Crops coded (0: every non-overlapping crop of the held-out photos).")
flags.DEFINE_integer("compression_budget", 50, "Network calls per stage of the per-crop codec.")
flags.DEFINE_string("workdir_root", "benchmarks/results/claims", "Workdirs of the experiments (resumable).")
flags.DEFINE_string("out", "benchmarks/results/paper_claims.json", "Results JSON (its .md beside it).")
flags.DEFINE_multi_string(
  "override", [], "key=value set on every variant's config (e.g. model.ch=64): what a closed gap would need."
)
flags.DEFINE_string(
  "plot",
  "",
  "Where to draw planned and measured bpd per budget: PREFIX_text.png and PREFIX_images.png ('': no plot).",
)

# The paper's numbers (arXiv 2110.02037, tables of section 6) beside each comparison.
PAPER = {
  "text_upscale": "text8: OA 1.43, 2-stage upscale did not beat it",
  "text_plan": "text8: 20 planned steps 1.51 against 1.43 with 250; the planner beats fixed schedules",
  "images_upscale": "CIFAR-10: Upscale-4 2.64, OA 2.69 (Upscale-16 between)",
  "images_plan": "CIFAR-10: OA 2.74 with 50 planned steps, 2.69 with all 3072",
  "audio_upscale": "SC09: 16-stage bit upscaling 6.29, OA mixture 7.93",
  "compression": "one CIFAR-10 image per file: 2.71-2.76 bpd, FLIF 4.19",
  "bits_back": "per data point, no bits-back overhead: per-file = all-at-once up to the flush",
}


IMAGE_VARIANTS = {"OA": "images", "Upscale-4": "images_upscale4", "Upscale-16": "images_upscale16"}


def verdict(difference: float, stderr: float) -> str:
  """For a difference that is positive where the paper's claim holds."""
  if difference > 2 * stderr:
    return "holds"
  if difference < -2 * stderr:
    return "does not hold at this scale"
  return "undecided within error"


def config_of(variant: str):
  config = claims.get_config(variant)
  config.training.num_train_steps = max(2, round(config.training.num_train_steps * FLAGS.steps_scale))
  config.training.eval_every_steps = config.training.num_train_steps
  config.training.checkpoint_every_steps = min(config.training.checkpoint_every_steps, config.training.num_train_steps)
  config.eval.num_passes = FLAGS.eval_passes
  for override in FLAGS.override:
    key, _, value = override.partition("=")
    *parents, leaf = key.split(".")
    node = functools.reduce(lambda n, name: n[name], parents, config)
    node[leaf] = type(node[leaf])(value) if not isinstance(node[leaf], bool) else value.lower() == "true"
  if FLAGS.plan_points:
    config.eval.plan_points = FLAGS.plan_points
  return config


def trained(variant: str, results: dict):
  """(config, workdir, eval result) of a variant, trained (or resumed) to its steps and evaluated once."""
  config = config_of(variant)
  workdir = str(pathlib.Path(FLAGS.workdir_root) / variant)
  key = f"eval/{variant}"
  if key not in results or results[key]["steps"] != config.training.num_train_steps:
    start = time.perf_counter()
    train.train_and_evaluate(config, workdir)
    result = inference.evaluate(config, workdir)
    results[key] = dict(result, steps=config.training.num_train_steps, seconds=time.perf_counter() - start)
    save(results)
  return config, workdir, results[key]


def measured_plans(variant: str, config, workdir: str, results: dict) -> list[dict]:
  key = f"plans/{variant}"
  if key not in results:
    exp, _, state = workdir_lib.restore(config, workdir)
    budgets = inference.plan_budgets(config.eval.plan_budgets, exp.num_variables)
    results[key] = inference.measure_plans(exp, state, budgets, config.eval.plan_points)
    losses, _ = inference.stage_step_losses(exp, state)
    results[f"planned_curve/{variant}"] = sum(planner.plan_all(stage) for stage in losses).tolist()
    save(results)
  return results[key]


def compare(rows, claim, what, better_name, better, worse_name, worse, tie_holds=False):
  """A row comparing the held-out bits/dim (eval results) of what the paper found better and what it found worse;
  with tie_holds the claim is only that the second is not better, so a tie within error holds too."""
  difference = worse["eval_bpd"] - better["eval_bpd"]
  stderr = math.hypot(better["eval_bpd_stderr"], worse["eval_bpd_stderr"])
  outcome = verdict(difference, stderr)
  if tie_holds and outcome.startswith("undecided"):
    outcome = "holds (equal within error)"
  measured = ", ".join(
    f"{n} {r['eval_bpd']:.3f} +- {r['eval_bpd_stderr']:.3f}" for n, r in ((better_name, better), (worse_name, worse))
  )
  rows.append({"claim": claim, "paper": PAPER[claim], "what": what, "measured": measured, "verdict": outcome})


def text_group(rows, results):
  oa_config, oa_dir, oa = trained("text", results)
  _, _, upscale = trained("text_upscale", results)
  what = "held-out bpc: the 2-stage upscale does not beat OA"
  compare(rows, "text_upscale", what, "OA", oa, "2-stage upscale", upscale, tie_holds=True)
  plans = measured_plans("text", oa_config, oa_dir, results)
  for row in plans:
    if row["budget"] in (1, oa_config.data.seq_len):
      continue  # One call or one per variable: the same calls whatever the schedule.
    rows.append(
      {
        "claim": "text_plan",
        "paper": PAPER["text_plan"],
        "what": f"budget {row['budget']} of D = {oa_config.data.seq_len}: optimal plan beats evenly spaced calls",
        "measured": f"optimal {row['measured']:.3f} +- {row['measured_stderr']:.3f}, even {row['even']:.3f} +- "
        f"{row['even_stderr']:.3f} (planned {row['planned']:.3f})",
        "verdict": verdict(row["even_minus_optimal"], row["even_minus_optimal_stderr"]),
      }
    )
  ends = {r["budget"]: r for r in plans}
  rows.append(
    {
      "claim": "text_plan",
      "paper": PAPER["text_plan"],
      "what": "the cost of parallel sampling: bpc under budgets 1, 5, 10, 20 and D",
      "measured": ", ".join(f"{b}: {r['measured']:.3f} +- {r['measured_stderr']:.3f}" for b, r in sorted(ends.items())),
      "verdict": "measured",
    }
  )


def images_group(rows, results):
  trained_runs = {name: trained(variant, results) for name, variant in IMAGE_VARIANTS.items()}
  oa, up4, up16 = (trained_runs[name][2] for name in IMAGE_VARIANTS)
  compare(rows, "images_upscale", "held-out bpd: Upscale-4 beats OA", "Upscale-4", up4, "OA", oa)
  compare(rows, "images_upscale", "held-out bpd: Upscale-16 beats OA", "Upscale-16", up16, "OA", oa)
  for name, variant in IMAGE_VARIANTS.items():
    config, workdir, _ = trained_runs[name]
    plans = {r["budget"]: r for r in measured_plans(variant, config, workdir, results)}
    middle = max(b for b in plans if b < max(plans))  # The paper's 50 calls (per stage) on CIFAR-10.
    rows.append(
      {
        "claim": "images_plan",
        "paper": PAPER["images_plan"],
        "what": f"{name}: held-out bpd under the optimal plan of each budget (calls per stage; even: evenly "
        f"spaced calls); the optimal plan beats even at budget {middle}",
        "measured": ", ".join(
          f"{b}: {r['measured']:.3f} +- {r['measured_stderr']:.3f} (even {r['even']:.3f})"
          for b, r in sorted(plans.items())
        ),
        "verdict": verdict(plans[middle]["even_minus_optimal"], plans[middle]["even_minus_optimal_stderr"]),
      }
    )


def audio_group(rows, results):
  _, _, oa = trained("audio", results)
  _, _, up = trained("audio_upscale", results)
  what = "held-out bpd: 16-stage bit upscaling beats the OA mixture"
  compare(rows, "audio_upscale", what, "bit upscale", up, "OA mixture", oa)


def held_out_crops(size: int) -> np.ndarray:
  """uint8 [N, size, size, 3]: the non-overlapping crops of the held-out photos."""
  crops = []
  for name in images_lib.TEST_PHOTOS:
    photo = images_lib.embedded_photos()[name]
    for y in range(0, photo.shape[0] - size + 1, size):
      for x in range(0, photo.shape[1] - size + 1, size):
        crops.append(photo[y : y + size, x : x + size])
  crops = np.stack(crops)
  return crops[: FLAGS.max_crops] if FLAGS.max_crops else crops


def compression_group(rows, results):
  config, workdir, _ = trained("images", results)
  key = "compression"
  if key not in results:
    bundle_dir = pathlib.Path(workdir) / "claims_bundle"
    bundle = codec.export(config, workdir, bundle_dir, [str(FLAGS.compression_budget)], force=True, report=print)
    crops = held_out_crops(FLAGS.crop)
    files = {f"crop_{i:04d}.png": media.png_bytes(c, optimize=True) for i, c in enumerate(crops)}
    budget = bundle.budgets[0]
    encoded = codec.encode_files(bundle, files, budget, method="ardm")
    decoded = codec.decode_files(bundle, {n + ".ardm": e.blob for n, e in encoded.items()})
    exact = all(
      np.array_equal(np.asarray(Image.open(io.BytesIO(decoded[n + ".ardm"]))), c) for n, c in zip(files, crops)
    )
    patch = bundle.event_shape[0]
    grid = crops.reshape(len(crops), FLAGS.crop // patch, patch, FLAGS.crop // patch, patch, 3).transpose(
      0, 1, 3, 2, 4, 5
    )
    together = io.BytesIO()
    np.save(together, np.ascontiguousarray(grid.reshape(-1, patch, patch, 3)))
    (one,) = codec.encode_files(bundle, {"all.npy": together.getvalue()}, budget, method="ardm").values()
    dims = FLAGS.crop * FLAGS.crop * 3
    payload = [8 * len(container.unpack(n, e.blob)[1]) for n, e in encoded.items()]
    results[key] = {
      "crops": len(crops),
      "budget": budget,
      "exact": bool(exact),
      "ardm_file_bpd": [8 * len(e.blob) / dims for e in encoded.values()],
      "ardm_payload_bpd": [p / dims for p in payload],
      "png_bpd": [8 * len(files[n]) / dims for n in files],
      "webp_bpd": [8 * len(classic.encode_pixels("webp", c)) / dims for c in crops],
      "jxl_bpd": [8 * len(classic.encode_pixels("jxl", c)) / dims for c in crops],
      "per_file_payload_bits": int(sum(payload)),
      "all_at_once_payload_bits": 8 * len(container.unpack("all", one.blob)[1]),
    }
    save(results)
  r = results[key]
  mean = {m: float(np.mean(r[f"{m}_bpd"])) for m in ("ardm_file", "ardm_payload", "png", "webp", "jxl")}
  stderr = {m: float(np.std(r[f"{m}_bpd"]) / math.sqrt(r["crops"])) for m in mean}
  best = min(("png", "webp", "jxl"), key=lambda m: mean[m])
  gap = np.asarray(r[f"{best}_bpd"]) - np.asarray(r["ardm_file_bpd"])  # Paired: the same crops.
  rows.append(
    {
      "claim": "compression",
      "paper": PAPER["compression"],
      "what": f"{r['crops']} held-out {FLAGS.crop}x{FLAGS.crop} crops, one file each (header included), budget "
      f"{r['budget']}: smaller than the best classic codec ({best})",
      "measured": ", ".join(f"{m} {mean[m]:.3f} +- {stderr[m]:.3f}" for m in mean)
      + f"; round trip exact: {r['exact']}",
      "verdict": verdict(float(gap.mean()), float(gap.std() / math.sqrt(len(gap)))),
    }
  )
  overhead = r["per_file_payload_bits"] - r["all_at_once_payload_bits"]
  rows.append(
    {
      "claim": "bits_back",
      "paper": PAPER["bits_back"],
      "what": "payload of each crop as its own file, summed, against all crops as one stream",
      "measured": f"{r['per_file_payload_bits']} against {r['all_at_once_payload_bits']} bits: "
      f"{overhead / r['crops']:.1f} bits per file (the coder's checksum and flush: < 96)",
      "verdict": "holds" if abs(overhead) <= 96 * r["crops"] else "does not hold at this scale",
    }
  )


def load() -> dict:
  path = pathlib.Path(FLAGS.out)
  return json.loads(path.read_text())["results"] if path.exists() else {}


def save(results: dict, rows=None) -> None:
  path = pathlib.Path(FLAGS.out)
  path.parent.mkdir(parents=True, exist_ok=True)
  previous = json.loads(path.read_text()) if path.exists() else {}
  document = {"results": results, "rows": rows if rows is not None else previous.get("rows", [])}
  document["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
  path.write_text(json.dumps(document, indent=1))


def markdown(rows) -> str:
  lines = ["| claim | the paper | what is compared | measured here | verdict |", "|---|---|---|---|---|"]
  lines += [f"| {r['claim']} | {r['paper']} | {r['what']} | {r['measured']} | {r['verdict']} |" for r in rows]
  return "\n".join(lines)


def main(argv):
  del argv
  start = time.perf_counter()
  results = load()
  rows = []
  groups = {"text": text_group, "images": images_group, "audio": audio_group, "compression": compression_group}
  for group in FLAGS.groups:
    groups[group](rows, results)
  save(results, rows)
  table = markdown(rows)
  pathlib.Path(FLAGS.out).with_suffix(".md").write_text(table + "\n")
  for variant in ("text", "images"):
    if FLAGS.plot and f"plans/{variant}" in results:
      curve = np.asarray(results[f"planned_curve/{variant}"])
      outputs.write_plan_plot(f"{FLAGS.plot}_{variant}.png", curve, 1, results[f"plans/{variant}"])
  print(table)
  print(f"\n{time.perf_counter() - start:.0f} s in this run; results in {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
