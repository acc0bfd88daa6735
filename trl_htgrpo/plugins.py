"""Plug-ins: how a model family, a model name or a detector joins the library without the core knowing it.

A plug-in is a package that, when imported, registers its pieces through the public registries:

* ``trl_htgrpo.backbones.register_backbone(model_type, factory)``: the adapter of a model family;
* ``trl_htgrpo.plugins.register_model_name(name, path)``: a short model name (``"shapes-mdm"``) for a folder;
* ``trl_htgrpo.rewards.register_detector(name, factory)``: a detector for the GenEval rule engine;
* transformers' ``AutoConfig.register`` / ``AutoModel.register`` for its model classes.

and names its module in the entry-point group :data:`ENTRY_POINT_GROUP` of its distribution::

    [project.entry-points."trl_htgrpo.plugins"]
    my_family = "my_package.trl_plugin"

The core imports no plug-in statically. When a registry is asked for a name it does not know, it calls
:func:`load_plugins` once, which imports every module of that group, and asks again. The built-in shapes
world (``trl_htgrpo.toy``) is such a plug-in; importing ``trl_htgrpo.toy`` also registers it.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Callable

ENTRY_POINT_GROUP = "trl_htgrpo.plugins"

#: short model name -> a function returning its local folder
MODEL_NAMES: dict[str, Callable[[], str]] = {}
_loaded: list[str] | None = None


def load_plugins() -> list[str]:
    """Import every module named in the entry-point group (once per process); returns their names."""
    global _loaded
    if _loaded is None:
        _loaded = []
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            ep.load()
            _loaded.append(ep.name)
    return list(_loaded)


def register_model_name(name: str, path: str | Callable[[], str]) -> None:
    """Make ``HTGRPOTrainer(model=name)`` and ``--model_name_or_path name`` load the folder ``path``."""
    MODEL_NAMES[name] = path if callable(path) else (lambda: str(path))


def resolve_model_name(name_or_path: str) -> str:
    """A registered model name -> its folder; anything else (a folder, a hub id) is returned as is."""
    if name_or_path not in MODEL_NAMES and not os.path.exists(name_or_path):
        load_plugins()
    if name_or_path in MODEL_NAMES:
        return MODEL_NAMES[name_or_path]()
    return name_or_path
