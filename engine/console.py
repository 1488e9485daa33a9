"""The command line's two rich consoles, built at their first use.

Importing rich costs about 2 MB of modules, and ``followup worker`` never prints through it.
"""
from __future__ import annotations

from typing import Any

__all__ = ["LazyConsole", "out", "err"]


class LazyConsole:
    """A ``rich.console.Console`` made when first used; its attributes are the real console's."""

    def __init__(self, **options: Any):
        self._options = options
        self._console = None

    @property
    def console(self):
        """The real console, for rich APIs that take one (``Progress(console=...)``)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle probe dunders before __init__ has run
            raise AttributeError(name)
        return getattr(self.console, name)


out = LazyConsole(highlight=False, soft_wrap=True)
err = LazyConsole(stderr=True, highlight=False, soft_wrap=True)
