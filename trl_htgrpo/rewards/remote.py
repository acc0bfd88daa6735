"""A reward function that scores images on a Flow-GRPO-style reward server (pickled JPEGs over HTTP).

The wire format is in :mod:`.protocol`. The servers of the field (``yifan123/reward-server``, MaskGRPO's
``grpo/reward_func.py``) listen on 127.0.0.1: GenEval on :18085, HPSv3 on :18087, UnifiedReward on :18088;
``python -m trl_htgrpo.rewards.serve`` serves any registered reward in the same format.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from PIL import Image

from . import protocol
from .scoring import prompt_text

logger = logging.getLogger(__name__)

# no HTTP(S)_PROXY for reward servers (MaskGRPO passes proxies=None too): they are on this machine or cluster
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

#: GenEval metadata columns a GenEval server reads (reward-server also reads "prompt", filled from the prompts)
GENEVAL_COLUMNS: tuple[str, ...] = ("tag", "include", "exclude")


class RemoteRewardError(RuntimeError):
    """The reward server could not be reached or answered something that is not a valid response."""


class RemoteReward:
    """Scores completions on a reward server, as a TRL reward function with an ``async`` ``__call__``.

    ``await reward(prompts, completions, **columns) -> list[float]``: ``completions`` are PIL images, sent in
    batches of ``batch_size`` as JPEG bytes; the reward of image i is ``scale * response[score_key][i]``. TRL
    awaits async reward functions together (``asyncio.gather``), so several servers score at once; each batch is
    posted from a thread pool (standard library HTTP, no new dependency). :meth:`score` is the synchronous form.

    Args:
        url: the server, e.g. ``"http://127.0.0.1:18085"``.
        score_key: the response key to read ("scores"; GenEval servers also answer "rewards", "strict_rewards").
        scale: multiplies every score (MaskGRPO divides HPSv3 and UnifiedReward scores by 5: ``scale=0.2``).
        send_prompts: send ``"prompts"`` (the prompt text of each image).
        metadata_columns: dataset columns to send as ``"meta_datas"`` (one dict per image, plus ``"prompt"``);
            None sends none. GenEval servers need ("tag", "include", "exclude").
        only_strict: sent as ``"only_strict"`` when not None (GenEval servers).
        batch_size: images per request (MaskGRPO and Flow-GRPO: 64).
        max_concurrency: requests in flight at once for this reward (reward-server runs one gunicorn worker
            per GPU and answers several at once).
        timeout: seconds per request (connect and read).
        max_retries: retries of a request after a connection error, a timeout or a 5xx answer, waiting
            ``backoff * 2**attempt`` seconds (at most ``max_backoff``) between tries. 4xx answers (a request the
            server rejects) and invalid responses are not retried.
        image_format, quality: how images are encoded (reward-server decodes JPEG only; ours also PNG, lossless).
        name: the reward's name in TRL's logs (default: ``remote:<url>``).

    Errors never become rewards: a server that is down, answers an error, or answers garbage (not a pickle,
    not a dict, a missing key, the wrong length, a non-number) raises :class:`RemoteRewardError` naming the
    URL. A ``None`` in the response is passed on (TRL skips that completion for this reward).
    """

    def __init__(
        self,
        url: str,
        *,
        score_key: str = "scores",
        scale: float = 1.0,
        send_prompts: bool = True,
        metadata_columns: Sequence[str] | None = None,
        only_strict: bool | None = None,
        batch_size: int = 64,
        max_concurrency: int = 1,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        image_format: str = "JPEG",
        quality: int | None = None,
        name: str | None = None,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"reward server url {url!r} must start with http:// or https://")
        if batch_size < 1 or max_concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("batch_size and max_concurrency must be >= 1, max_retries >= 0 and timeout > 0")
        self.url = url
        self.score_key, self.scale = score_key, scale
        self.send_prompts = send_prompts
        self.metadata_columns = tuple(metadata_columns) if metadata_columns is not None else None
        self.only_strict = only_strict
        self.batch_size, self.max_concurrency = batch_size, max_concurrency
        self.timeout, self.max_retries, self.backoff, self.max_backoff = timeout, max_retries, backoff, max_backoff
        self.image_format, self.quality = image_format, quality
        self.__name__ = name or f"remote:{url}"
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def geneval(cls, url: str = "http://127.0.0.1:18085", *, only_strict: bool = True, **kwargs: Any) -> "RemoteReward":
        """A GenEval server as Flow-GRPO and MaskGRPO call it: images, meta_datas, only_strict; reads "scores"."""
        kwargs.setdefault("name", "geneval_remote")
        return cls(url, send_prompts=False, metadata_columns=GENEVAL_COLUMNS, only_strict=only_strict, **kwargs)

    # -- requests -----------------------------------------------------------------------------------------------

    def _requests(self, prompts: Sequence[Any], completions: Sequence[Image.Image], kwargs: dict[str, Any]):
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"{self.__name__}: {len(prompts)} prompts for {n} completions")
        texts = [prompt_text(p) for p in prompts]
        metas = None
        if self.metadata_columns is not None:
            metas = []
            for i in range(n):
                row = {c: kwargs[c][i] for c in self.metadata_columns if c in kwargs and kwargs[c][i] is not None}
                row.setdefault("prompt", texts[i])
                metas.append(row)
        out = []
        for start in range(0, n, self.batch_size):
            end = min(start + self.batch_size, n)
            request: dict[str, Any] = {"images": [protocol.encode_image(im, self.image_format, self.quality)
                                                  for im in completions[start:end]]}
            if self.send_prompts:
                request["prompts"] = texts[start:end]
            if metas is not None:
                request["meta_datas"] = metas[start:end]
            if self.only_strict is not None:
                request["only_strict"] = self.only_strict
            out.append((end - start, protocol.dumps(request)))
        return out

    def _post(self, body: bytes) -> bytes:
        """POST ``body``; retries connection errors, timeouts and 5xx answers; returns the 200 answer's body."""
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
            req = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/octet-stream"})
            try:
                with _OPENER.open(req, timeout=self.timeout) as resp:
                    return resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read()[:2000].decode("utf-8", "replace").strip()
                last = f"HTTP {e.code}: {detail}"
                if e.code < 500:
                    raise RemoteRewardError(f"reward server {self.url} rejected the request ({last})") from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:  # refused, reset, timeout
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            logger.warning("reward server %s: try %d of %d failed (%s)", self.url, attempt + 1,
                           self.max_retries + 1, last)
        hint = "" if last.startswith("HTTP") else " (is the server running? python -m trl_htgrpo.rewards.serve)"
        raise RemoteRewardError(f"reward server {self.url} failed {self.max_retries + 1} times; last error: {last}{hint}")

    def _score_one(self, n: int, body: bytes) -> list[float | None]:
        raw = self._post(body)
        try:
            response = protocol.loads(raw)
        except Exception as e:
            raise RemoteRewardError(f"reward server {self.url} answered {len(raw)} bytes that are not a valid "
                                    f"pickle of a response ({type(e).__name__}: {e}); first bytes {raw[:40]!r}") from None
        try:
            scores = protocol.check_scores(response, self.score_key, n)
        except protocol.ProtocolError as e:
            raise RemoteRewardError(f"reward server {self.url} answered an invalid response: {e}") from None
        return [None if s is None else self.scale * s for s in scores]

    # -- reward function ----------------------------------------------------------------------------------------

    def score(self, prompts: Sequence[Any], completions: Sequence[Image.Image], **kwargs: Any) -> list[float | None]:
        """The synchronous form of ``await reward(...)``: batches one after another."""
        out: list[float | None] = []
        for n, body in self._requests(prompts, completions, kwargs):
            out += self._score_one(n, body)
        return out

    async def __call__(self, prompts: Sequence[Any], completions: Sequence[Image.Image], **kwargs: Any) -> list[float | None]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="remote-reward")
        loop = asyncio.get_running_loop()
        batches = self._requests(prompts, completions, kwargs)
        results = await asyncio.gather(*(loop.run_in_executor(self._executor, self._score_one, n, body)
                                         for n, body in batches))
        return [s for batch in results for s in batch]

    def __repr__(self) -> str:
        return f"RemoteReward({self.url!r}, score_key={self.score_key!r}, scale={self.scale})"

    def __getstate__(self):  # picklable (the executor is rebuilt on first use)
        state = dict(self.__dict__)
        state["_executor"] = None
        return state
