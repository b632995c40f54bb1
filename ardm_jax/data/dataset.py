"""Step-indexed batching over a finite set of examples, shared by every data source: the global batch at `step` is a
pure function of (seed, step), every epoch visits each example once, and a process builds exactly the rows a
single-process run builds for the same global positions. Design notes: docs/design.md#dataset
"""

import dataclasses
import functools
from typing import Callable, Iterator, Optional

import numpy as np

_PERMUTATION_STREAM = 0
_ROW_RANDOM_STREAM = 1

# (examples [b, *example_shape] uint8, random_bits [b] uint64) -> [b, *event_shape]
RowTransform = Callable[[np.ndarray, np.ndarray], np.ndarray]


@functools.lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The order [num_examples] in which epoch `epoch` visits the training examples."""
  return np.random.default_rng((seed, _PERMUTATION_STREAM, epoch)).permutation(num_examples)


def process_batch_size(global_batch_size: int, process_count: int, process_index: int) -> int:
  """Rows per process; ValueError unless the global batch splits evenly across processes."""
  if global_batch_size < 1:
    raise ValueError(f"batch size must be positive, got {global_batch_size}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} is not in [0, process_count={process_count})")
  if global_batch_size % process_count:
    raise ValueError(f"global batch size {global_batch_size} is not divisible by process_count {process_count}")
  return global_batch_size // process_count


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A finite training set with step-indexed batches, and an eval split.

  Attributes:
    name: the source name (`data.name`).
    event_shape: shape of one data point, e.g. (32, 32, 3) or (seq_len,).
    num_classes: K; values lie in 0..K-1.
    train_examples: uint8 [N, *example_shape] training examples (text: 1000-char chunks that `train_transform`
      crops; images: the images themselves).
    eval_examples: uint8 [M, *event_shape], the eval split in order.
    seed: data seed (`data.seed`).
    train_transform: per-row random transform applied to training examples (None: identity).
  """

  name: str
  event_shape: tuple[int, ...]
  num_classes: int
  train_examples: np.ndarray
  eval_examples: np.ndarray
  seed: int
  train_transform: Optional[RowTransform] = None

  @property
  def num_train_examples(self) -> int:
    return len(self.train_examples)

  @property
  def num_eval_examples(self) -> int:
    return len(self.eval_examples)

  def train_indices(
    self, step: int, global_batch_size: int, process_index: int = 0, process_count: int = 1
  ) -> np.ndarray:
    """Indices into `train_examples` of this process's rows of the batch at `step`: int64 [B / P]."""
    rows = self._process_rows(step, global_batch_size, process_index, process_count)
    positions = step * global_batch_size + rows
    epochs, offsets = np.divmod(positions, self.num_train_examples)
    indices = np.empty_like(positions)
    for epoch in np.unique(epochs):
      in_epoch = epochs == epoch
      indices[in_epoch] = epoch_permutation(self.seed, int(epoch), self.num_train_examples)[offsets[in_epoch]]
    return indices

  def train_batch(
    self, step: int, global_batch_size: int, process_index: int = 0, process_count: int = 1
  ) -> np.ndarray:
    """This process's slice of the global training batch at `step`.

    Returns:
      int32 [global_batch_size // process_count, *event_shape]: rows
      [process_index * b, (process_index + 1) * b) of the global batch, b = global_batch_size // process_count.
    """
    examples = self.train_examples[self.train_indices(step, global_batch_size, process_index, process_count)]
    if self.train_transform is not None:
      rows = self._process_rows(step, global_batch_size, process_index, process_count)
      row_bits = np.random.default_rng((self.seed, _ROW_RANDOM_STREAM, step)).integers(
        0, 2**63, size=global_batch_size, dtype=np.uint64
      )
      examples = self.train_transform(examples, row_bits[rows])
    return examples.astype(np.int32)

  def num_eval_batches(self, batch_size: int, process_count: int = 1) -> int:
    """How many batches `eval_batches` yields on every process."""
    return -(-self.num_eval_examples // (batch_size * process_count))

  def eval_batches(
    self, batch_size: int, process_index: int = 0, process_count: int = 1
  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterates this process's share of the eval split; all processes together cover it exactly once.

    Args:
      batch_size: rows per process per batch (the global eval batch is batch_size * process_count).
    Yields:
      x: int32 [batch_size, *event_shape]; weight: float32 [batch_size], 1 for real rows, 0 for padding.
    """
    process_batch_size(batch_size * process_count, process_count, process_index)
    num_batches = self.num_eval_batches(batch_size, process_count)
    return self._eval_batches(batch_size, process_index, process_count, num_batches)

  def _eval_batches(self, batch_size, process_index, process_count, num_batches):
    for batch in range(num_batches):
      start = (batch * process_count + process_index) * batch_size
      real = self.eval_examples[start : start + batch_size]
      x = np.zeros((batch_size, *self.event_shape), np.int32)
      x[: len(real)] = real
      weight = np.zeros((batch_size,), np.float32)
      weight[: len(real)] = 1.0
      yield x, weight

  def _process_rows(self, step, global_batch_size, process_index, process_count) -> np.ndarray:
    """Global row indices int64 [B / P] of this process's slice."""
    if step < 0:
      raise ValueError(f"step must be non-negative, got {step}")
    per_process = process_batch_size(global_batch_size, process_count, process_index)
    return np.arange(process_index * per_process, (process_index + 1) * per_process, dtype=np.int64)
