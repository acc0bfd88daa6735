"""What a measurement ran on, written beside the figures it produced.

Wall times on 2 CPU cores differ by machine more than any knob moves them (the shapes main job: 16 min 31 s on an
AMD EPYC without AVX-512, 4 min 53 s on an Intel Xeon with AVX-512), and a training run's digits can differ too
(the main job reads 0.442 on AVX2 kernels and 0.479 on AVX-512 ones, same code and seed; docs/quickstart.md), so
every JSON of results names the CPU, the instruction set torch dispatches to
(``torch.backends.cpu.get_cpu_capability()``), the thread count, the accelerator and the versions of the
libraries that compute the numbers.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata

#: the distributions whose version is recorded (absent ones are skipped)
LIBRARIES = ("torch", "transformers", "trl", "accelerate", "peft", "numpy")


def cpu_model() -> str:
    """The CPU's name (``model name`` of /proc/cpuinfo on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe_machine() -> dict:
    """CPU name and the instruction set torch dispatches to, core and thread counts, accelerator, versions."""
    import torch

    accelerator = None
    if torch.accelerator.is_available():
        device = torch.accelerator.current_accelerator()
        accelerator = torch.cuda.get_device_name() if device.type == "cuda" else device.type
    return {
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "accelerator": accelerator,
        "python": platform.python_version(),
        "libraries": library_versions(),
    }
