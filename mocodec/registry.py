"""A tiny name -> factory registry, one instance per kind (codecs, distortions, tasks).

Modelled on timm's ``register_model`` / ``create_model``: variants are small
functions decorated with ``@REGISTRY.register``; names are stored with hyphens
(``bmshj2018-hyperprior``) and looked up with hyphens or underscores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from mocodec.errors import UnknownNameError

F = TypeVar("F", bound=Callable[..., Any])


def canonical_name(name: str) -> str:
    """The registry spelling of ``name``: lower case, underscores as hyphens."""
    return name.strip().lower().replace("_", "-")


class Registry:
    """Maps canonical names to factories; ``create`` builds an instance by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, fn: F | None = None, *, name: str | None = None, **meta: Any) -> Any:
        """Decorator: register ``fn`` under ``name`` (default: the function's name).

        Keyword arguments are kept as metadata of the entry (see :meth:`meta`).
        """

        def decorate(factory: F) -> F:
            key = canonical_name(name or factory.__name__)
            if key in self._factories:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._factories[key] = factory
            self._meta[key] = dict(meta)
            return factory

        return decorate(fn) if fn is not None else decorate

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_name(name) in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> Callable[..., Any]:
        key = canonical_name(name)
        try:
            return self._factories[key]
        except KeyError:
            known = ", ".join(self.names())
            raise UnknownNameError(f"unknown {self.kind} '{name}'; known {self.kind}s: {known}") from None

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)  # the same error for unknown names
        return self._meta[canonical_name(name)]

    def create(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)
