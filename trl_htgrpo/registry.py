"""Named, configurable rules and their registries.

Every choice of the method is a :class:`Rule` class in a :class:`Registry`: the partition of tokens, the
credit weights, the stages of the inner loop, the importance-ratio estimator. A rule reads its own config
fields (its ``knobs``) and checks them; the config's choices, its knob checks and docs/api.md are derived from
the registries, so a new rule is one class and one ``@REGISTRY.register`` line.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, TypeVar


class Rule:
    """A named piece of the method. Subclasses set ``name`` and ``knobs`` and take the config in ``__init__``."""

    name: ClassVar[str]
    #: config fields that only this rule reads: given with another rule of the same registry, they are an error
    knobs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, args: Any):
        self.args = args

    @classmethod
    def check(cls, args: Any) -> list[str]:
        """Errors in this rule's knobs (called by ``HTGRPOConfig.__post_init__`` when the rule is selected)."""
        return []


R = TypeVar("R", bound=type[Rule])


class Registry(dict):
    """``name -> Rule class`` for one kind of rule, selected by the config field ``field``."""

    def __init__(self, kind: str, field: str):
        super().__init__()
        self.kind, self.field = kind, field

    def register(self, cls: R) -> R:
        """Class decorator: add ``cls`` under ``cls.name``."""
        self[cls.name] = cls
        return cls

    def get_rule(self, name: str) -> type[Rule]:
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {sorted(self)}")
        return self[name]

    def knob_errors(self, selected: Iterable[str], args: Any, defaults: dict[str, Any]) -> list[str]:
        """Knobs that only rules not ``selected`` own but that were given (differ from their default); a knob
        several rules share is fine when one of them is selected."""
        selected = set(selected)
        own = {knob for name in selected if name in self for knob in self[name].knobs}
        owners: dict[str, list[str]] = {}
        for name, cls in self.items():
            for knob in cls.knobs:
                if name not in selected and knob not in own:
                    owners.setdefault(knob, []).append(name)
        errors = []
        for knob, names in owners.items():
            if knob in defaults and getattr(args, knob) != defaults[knob]:
                where = " or ".join(f"{self.field}={n!r}" for n in names)
                errors.append(f"{knob}={getattr(args, knob)!r} only acts with {where} but "
                              f"{self.field}={getattr(args, self.field)!r}; remove it or set {self.field}={names[0]!r}")
        return errors
