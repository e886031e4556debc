"""The ``env`` a worker receives: its variables (and, later, its bindings)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_MISSING = object()


class Env:
    """Read-only bindings by attribute (``env.API_KEY``) or by key (``env["API_KEY"]``)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", dict(values or {}))

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        value = values.get(name, _MISSING)
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
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def keys(self) -> list[str]:
        return list(self._values)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._values))

    def __repr__(self) -> str:
        # Values may be secrets: show only the names.
        return f"<Env {', '.join(sorted(self._values))}>"


def replace_values(env: Env, values: Mapping[str, Any]) -> None:
    """Give ``env`` new values in place (a restored instance's vars), for whoever holds it."""
    object.__setattr__(env, "_values", dict(values))


# The worker's env as a module global (``from workers import env``), for configuration at top
# level and for code that has no ``self.env`` at hand. It is the very object handlers receive:
# its values are those of the instance (replace_values after a restore).
env = Env()
