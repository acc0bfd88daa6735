"""The wire format of Flow-GRPO's reward servers (``yifan123/reward-server``), both ways.

One HTTP ``POST /`` per batch. The body is ``pickle.dumps(request)``, the answer ``pickle.dumps(response)``
with status 200; on failure the server answers 500 (reward-server: the traceback as UTF-8 text; ours: 400 for a
malformed request, 500 when the reward raised, both with a text reason).

Request, a dict (reward-server ``app_geneval.py`` / ``app_deqa.py``; MaskGRPO ``grpo/reward_func.py``)::

    "images":      list[bytes]  one JPEG file per image (PIL ``save(format="JPEG")``, quality 75 by default)
    "prompts":     list[str]    (HPSv3 :18087, UnifiedReward :18088; MaskGRPO sends a numpy str array)
    "meta_datas":  list[dict]   GenEval metadata per image: tag, include, exclude?, prompt (GenEval :18085)
    "only_strict": bool         GenEval: skip GenEval's own correctness, which leaves "rewards" at 0.0

Response, a dict with one list per image under each key::

    "scores"                 the reward (GenEval: Flow-GRPO's partial credit; scorers: the score)
    "rewards"                GenEval: GenEval's strict correctness, 1.0 / 0.0
    "strict_rewards"         GenEval: reward-server's exact-count correctness, 1.0 / 0.0
    "group_rewards", "group_strict_rewards"
                             GenEval: {tag: list}, for each of the six tags, the value where the image has that
                             tag and -10.0 elsewhere (a mask for per-tag means)
    "outputs"                DeQA (:18086): the score / 5

Pickle runs code while it loads, so both ends here load with :class:`RestrictedUnpickler`, which builds
only plain Python containers, numbers, strings and bytes, and numpy arrays and scalars (MaskGRPO pickles
``np.array_split`` slices); any other global is refused.
"""

from __future__ import annotations

import io
import numbers
import pickle
from typing import Any, Sequence

from PIL import Image

#: request keys a client may send, and their meaning (see the module docstring)
REQUEST_KEYS: tuple[str, ...] = ("images", "prompts", "meta_datas", "only_strict")
#: the six GenEval tags of reward-server's per-tag masks
GENEVAL_TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
#: reward-server's filler for the other tags in "group_rewards" / "group_strict_rewards"
GROUP_FILL = -10.0

# numpy's pickles of arrays and scalars reduce to these (numpy 1.x and 2.x module names)
_SAFE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "slice"),
    ("collections", "OrderedDict"),
}


class ProtocolError(ValueError):
    """A message that does not follow the wire format (raised by both the client and the server)."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only numpy's array/scalar reconstruction and a few builtin types."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to unpickle the global {module}.{name}: the reward protocol "
                                         "carries only lists, dicts, strings, bytes, numbers and numpy arrays")
        return super().find_class(module, name)


def loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=4)


def encode_image(image: Image.Image, fmt: str = "JPEG", quality: int | None = None) -> bytes:
    """One image file as bytes, as reward-server's clients make them (``image.save(buf, format="JPEG")``)."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    if fmt.upper() in ("JPEG", "JPG") and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({} if quality is None else {"quality": quality}))
    return buf.getvalue()


def decode_image(data: bytes, index: int) -> Image.Image:
    """Bytes of a JPEG (or PNG) file -> an RGB PIL image; ProtocolError naming ``images[index]`` otherwise."""
    if not isinstance(data, (bytes, bytearray)):
        raise ProtocolError(f"images[{index}] is {type(data).__name__}, expected bytes of a JPEG file")
    try:
        image = Image.open(io.BytesIO(data), formats=["JPEG", "PNG"])
        image.load()
    except Exception as e:
        raise ProtocolError(f"images[{index}] is not a JPEG or PNG file ({len(data)} bytes): {e}") from e
    return image.convert("RGB")


def _as_list(value: Any, key: str) -> list:
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):  # numpy array (MaskGRPO's array_split)
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ProtocolError(f"{key!r} is {type(value).__name__}, expected a list")
    return list(value)


def parse_request(obj: Any) -> dict[str, Any]:
    """Check a decoded request; returns ``{"images": [PIL], "prompts": [str] | None, "meta_datas": [dict] | None,
    "only_strict": bool}`` or raises ProtocolError saying what is wrong."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"the request is a pickled {type(obj).__name__}; expected a dict with keys {REQUEST_KEYS}")
    unknown = sorted(map(str, set(obj) - set(REQUEST_KEYS)))
    if unknown:
        raise ProtocolError(f"unknown request keys {unknown}; valid keys: {list(REQUEST_KEYS)}")
    if "images" not in obj:
        raise ProtocolError("the request has no 'images' (a list of JPEG bytes)")
    images = [decode_image(d, i) for i, d in enumerate(_as_list(obj["images"], "images"))]
    n = len(images)
    prompts = None
    if obj.get("prompts") is not None:
        prompts = _as_list(obj["prompts"], "prompts")
        if len(prompts) != n:
            raise ProtocolError(f"{len(prompts)} prompts for {n} images")
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise ProtocolError(f"prompts[{i}] is {type(p).__name__}, expected str")
    metas = None
    if obj.get("meta_datas") is not None:
        metas = _as_list(obj["meta_datas"], "meta_datas")
        if len(metas) != n:
            raise ProtocolError(f"{len(metas)} meta_datas for {n} images")
        for i, m in enumerate(metas):
            if not isinstance(m, dict):
                raise ProtocolError(f"meta_datas[{i}] is {type(m).__name__}, expected a dict (GenEval metadata)")
    only_strict = obj.get("only_strict", False)
    if not isinstance(only_strict, bool):
        raise ProtocolError(f"'only_strict' is {type(only_strict).__name__}, expected bool")
    return {"images": images, "prompts": prompts, "meta_datas": metas, "only_strict": only_strict}


def check_scores(response: Any, key: str, expected: int) -> list[float | None]:
    """``response[key]`` as ``expected`` floats (None kept: a skipped image); ProtocolError otherwise."""
    if not isinstance(response, dict):
        raise ProtocolError(f"the response is a pickled {type(response).__name__}, expected a dict")
    if key not in response:
        raise ProtocolError(f"the response has no {key!r}; its keys: {sorted(map(str, response))}")
    values = _as_list(response[key], key)
    if len(values) != expected:
        raise ProtocolError(f"{key!r} has {len(values)} values for {expected} images")
    out: list[float | None] = []
    for i, v in enumerate(values):
        if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):  # numpy / torch scalar
            v = v.item()
        if v is None:
            out.append(None)
        elif isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ProtocolError(f"{key}[{i}] is {type(v).__name__} {v!r:.60}, expected a number")
        else:
            out.append(float(v))
    return out


def group_by_tag(tags: Sequence[str], values: Sequence[float]) -> dict[str, list[float]]:
    """reward-server's per-tag masks: for each of the six tags, ``value`` where the image has it, else -10.0."""
    return {t: [float(v) if tag == t else GROUP_FILL for tag, v in zip(tags, values)] for t in GENEVAL_TAGS}
