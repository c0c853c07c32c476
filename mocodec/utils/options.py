"""Keyword options given as text (``KEY=VALUE``) and checked against the function they are for.

A task, dataset or metric is built by a factory that takes keyword options; options typed
by a user (``--task-option batch_size=64``, a recipe's ``options:``) are checked against
the factory's signature first, so a typo is one line naming the options it does take
instead of a ``TypeError`` from deep inside a constructor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from mocodec.errors import ConfigError

# Parameters a factory fills itself; a user never passes them as options.
_NOT_OPTIONS = ("self", "root")


def accepted_options(fn: Callable[..., Any]) -> list[str] | None:
    """The keyword options ``fn`` takes, in signature order; None when it takes any (``**kwargs``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in _NOT_OPTIONS]


def unknown_options(fn: Callable[..., Any], options: Mapping[str, Any]) -> list[str]:
    """The keys of ``options`` that ``fn`` does not take, in their order."""
    accepted = accepted_options(fn)
    return [] if accepted is None else [k for k in options if k not in accepted]


def check_options(fn: Callable[..., Any], options: Mapping[str, Any], what: str) -> None:
    """Refuse keyword options ``fn`` does not take, naming those it does (unless it takes ``**kwargs``)."""
    unknown = unknown_options(fn, options)
    if unknown:
        accepted = accepted_options(fn) or []
        raise ConfigError(f"{what} takes no option '{unknown[0]}'; its options: {', '.join(accepted) or 'none'}")


def parse_key_values(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` texts -> a dict; values read as YAML scalars (``64`` an int, ``true`` a bool), keys with ``-`` as ``_``.

    ``flag`` names the option the texts came from, for the error message.
    """
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes KEY=VALUE, got '{pair}'")
        out[key.strip().replace("-", "_")] = yaml.safe_load(value) if value.strip() else None
    return out
