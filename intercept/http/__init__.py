"""The HTTP side: an ASGI app served by hypercorn's trio worker."""

from .app import App

__all__ = ["App"]
