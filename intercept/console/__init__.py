"""The web console: server-rendered pages for operators and advocates, beside the API.

`Console` is mounted by `http.app.App` at / (the API stays under /api/); docs/console.md
describes the pages, sessions and security headers.
"""

from .app import Console
from .services import ConsoleServices

__all__ = ["Console", "ConsoleServices"]
