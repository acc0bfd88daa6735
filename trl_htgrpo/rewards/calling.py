"""Wrappers that name a reward function in every error it causes, keeping it sync or async as it was.

TRL runs ``async def`` reward functions concurrently (``asyncio.gather`` on a daemon loop) and calls the others
in turn; a synchronous wrapper around an async function would hand TRL a coroutine. Both wrappers also check
what the function returned: one number (or None) per completion.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

from trl.trainer.utils import is_async_callable


def check_rewards(name: str, output: Any, expected: int) -> list:
    """``output`` as a list of ``expected`` numbers or None; else a TypeError naming the function and the value."""
    if hasattr(output, "tolist") and not isinstance(output, (list, tuple)):  # numpy array, torch tensor
        output = output.tolist()
    if not isinstance(output, (list, tuple)):
        raise TypeError(f"reward function {name!r} returned {type(output).__name__} {output!r:.80}; it must return "
                        f"a list of {expected} floats (or None), one per completion")
    for i, r in enumerate(output):
        if r is not None and (isinstance(r, bool) or not isinstance(r, numbers.Real)):
            raise TypeError(f"reward function {name!r} returned {type(r).__name__} {r!r:.80} at position {i}; each "
                            "reward must be a float (or None to skip the completion)")
    if len(output) != expected:
        raise ValueError(f"reward function {name!r} returned {len(output)} rewards for {expected} completions")
    return list(output)


class NamedReward:
    """Calls a synchronous reward function, naming it in any exception and checking its output."""

    def __init__(self, func: Callable, name: str):
        self.func, self.__name__ = func, name

    def __call__(self, *args, **kwargs):
        try:
            out = self.func(*args, **kwargs)
        except Exception as e:
            raise RuntimeError(f"reward function {self.__name__!r} raised {type(e).__name__}: {e}") from e
        return check_rewards(self.__name__, out, len(kwargs.get("completions", args[1] if len(args) > 1 else [])))


class NamedAsyncReward(NamedReward):
    """The same for an ``async def`` reward function: awaitable, so TRL still runs it concurrently."""

    async def __call__(self, *args, **kwargs):
        try:
            out = await self.func(*args, **kwargs)
        except Exception as e:
            raise RuntimeError(f"reward function {self.__name__!r} raised {type(e).__name__}: {e}") from e
        return check_rewards(self.__name__, out, len(kwargs.get("completions", args[1] if len(args) > 1 else [])))


def named(func: Callable, name: str) -> NamedReward:
    """Wrap ``func`` (sync or async) under ``name``."""
    return (NamedAsyncReward if is_async_callable(func) else NamedReward)(func, name)
