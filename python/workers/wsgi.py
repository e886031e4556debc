"""``from workers import wsgi``: the same as the top-level ``wsgi`` module."""

from wsgi import entrypoint, fetch

__all__ = ["entrypoint", "fetch"]
