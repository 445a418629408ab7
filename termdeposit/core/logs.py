"""The project's one logger, set up in one place."""

from __future__ import annotations

import logging
import os

_LOGGER_NAME = "termdeposit"


def get_logger(name: str | None = None) -> logging.Logger:
    """Return the project logger (or a child of it), configured once from ``TERMDEPOSIT_LOG``."""
    root = logging.getLogger(_LOGGER_NAME)
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("TERMDEPOSIT_LOG", "WARNING").upper())
        root.propagate = False
    return root.getChild(name) if name else root
