"""The ``env`` a worker receives: its variables (and, later, its bindings)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_MISSING = object()


class SecretNotAvailable(RuntimeError):
    """A secret was read while the worker's top level ran: secrets are kept out of snapshots."""


def _withheld_error(name: str) -> SecretNotAvailable:
    return SecretNotAvailable(
        f"env.{name} is a secret, and secrets are not available while the worker's top level "
        "runs: thaw snapshots the initialised worker, and a secret must never be in the "
        "snapshot image. Read it inside a handler (`self.env." + name + "` in fetch, or "
        "`env." + name + "` from `from workers import env` when a request is served), or "
        "in a function registered with register_after_restore"
    )


class Env:
    """Read-only bindings by attribute (``env.API_KEY``) or by key (``env["API_KEY"]``)."""

    __slots__ = ("_values", "_withheld")

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", dict(values or {}))
        object.__setattr__(self, "_withheld", frozenset())

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        value = values.get(name, _MISSING)
        if value is _MISSING and name in object.__getattribute__(self, "_withheld"):
            raise _withheld_error(name)
        if value is _MISSING:
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            defined = ", ".join(sorted(values)) or "none"
            raise AttributeError(
                f"env has no variable or binding named {name!r} (defined: {defined}); "
                "add it under [tool.thaw] vars in pyproject.toml"
            )
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("env is read-only")

    def __getitem__(self, name: str) -> Any:
        if name not in self._values and name in self._withheld:
            raise _withheld_error(name)
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values or name in self._withheld

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def get(self, name: str, default: Any = None) -> Any:
        if name not in self._values and name in self._withheld:
            raise _withheld_error(name)
        return self._values.get(name, default)

    def keys(self) -> list[str]:
        return list(self._values) + sorted(n for n in self._withheld if n not in self._values)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.keys()))

    def __repr__(self) -> str:
        # Values may be secrets: show only the names.
        return f"<Env {', '.join(sorted(self.keys()))}>"


def replace_values(env: Env, values: Mapping[str, Any],
                   withheld: frozenset[str] = frozenset()) -> None:
    """Give ``env`` new values in place (a restored instance's vars and secrets), for whoever
    holds it. Names in ``withheld`` (secrets, while the top level runs) exist but raise
    SecretNotAvailable when read."""
    object.__setattr__(env, "_values", dict(values))
    object.__setattr__(env, "_withheld", frozenset(withheld))


# The worker's env as a module global (``from workers import env``), for configuration at top
# level and for code that has no ``self.env`` at hand. It is the very object handlers receive:
# its values are those of the instance (replace_values after a restore).
env = Env()
