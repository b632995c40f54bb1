"""The data-kind registry: the one place that says which kind ('text', 'bytes', 'image', 'audio') a config's
data, a model's data points or a codec bundle is, and how many classes each kind has."""

NUM_CLASSES = {"text": 27, "bytes": 256, "image": 256, "audio": 65536}
# data.name -> kind; data.name='files' is the kind of its data.kind.
SOURCES = {
  "text8": "text",
  "embedded_text": "text",
  "embedded_bytes": "bytes",
  "cifar10": "image",
  "embedded_images": "image",
  "embedded_photos": "image",
  "sc09": "audio",
  "embedded_audio": "audio",
}
FILES = {"text": "text", "bytes": "bytes", "images": "image"}  # data.kind of data.name='files'
UNITS = {"text": "characters", "bytes": "bytes", "image": "subpixels", "audio": "samples"}


class KindError(ValueError):
  """Data that is none of the known kinds."""


def of_data(data) -> str:
  """The kind of a config's data section (config.data, or a mapping with its keys)."""
  name = data["name"]
  if name == "files":
    if data.get("kind") not in FILES:
      raise KindError(f"data.kind={data.get('kind')!r} is not one of {list(FILES)}")
    return FILES[data["kind"]]
  if name not in SOURCES:
    raise KindError(f"data.name={name!r} is not one of {[*SOURCES, 'files']}")
  return SOURCES[name]


def of_points(event_shape, num_classes: int) -> str:
  """The kind of a model's data points: their shape [*event] and number of classes K."""
  event_shape = tuple(event_shape)
  if len(event_shape) == 3 and event_shape[-1] == 3 and num_classes == NUM_CLASSES["image"]:
    return "image"
  if len(event_shape) == 1:
    for kind in ("text", "bytes", "audio"):
      if num_classes == NUM_CLASSES[kind]:
        return kind
  raise KindError(f"data points {event_shape} of {num_classes} classes are none of the kinds {list(NUM_CLASSES)}")
