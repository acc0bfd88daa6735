"""Ending distributed runs cleanly.

torch 2.13's gloo backend sometimes aborts a process at exit after training has finished
(SIGABRT, "terminate called without an active exception"). A barrier plus
``destroy_process_group()`` cures plain DDP; under DeepSpeed ZeRO-3 only ``os._exit(0)`` after
everything is saved and flushed does.
"""

from __future__ import annotations

import os
import sys


def end_distributed() -> None:
    """Call last in a script: barrier, destroy the process group, and under gloo exit at once."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    backend = dist.get_backend()
    dist.barrier()
    dist.destroy_process_group()
    if backend == "gloo":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
