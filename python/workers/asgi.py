"""``from workers import asgi``: the same as the top-level ``asgi`` module."""

from asgi import entrypoint, fetch

__all__ = ["entrypoint", "fetch"]
