"""The production model the API serves: loaded once, swapped when another is promoted."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.modeling import registry
from termdeposit.modeling.registry import LoadedModel, ModelError

log = get_logger("api")

#: Seconds between two looks at the production pointer.
POINTER_CHECK_SECONDS = 1.0


class ModelHolder:
    """The production model, loaded once and swapped when the production pointer changes.

    The pointer (a folder or object storage) is checked at most once every
    :data:`POINTER_CHECK_SECONDS`.
    """

    def __init__(self, models_dir: Path | None = None) -> None:
        self.models_dir = models_dir
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._error: TermDepositError | None = None
        self._stamp: Any = None
        self._checked = -math.inf

    def _pointer_stamp(self) -> Any:
        try:
            return registry.pointer_stamp(self.models_dir)
        except TermDepositError as exc:  # object storage out of reach: keep the loaded model
            log.warning("could not look at the production pointer: %s", exc)
            return self._stamp

    def get(self) -> LoadedModel:
        """The production model (reloaded first if the pointer changed).

        Raises:
            ModelError: no usable production model (the API answers 503).
        """
        now = time.monotonic()
        if now - self._checked >= POINTER_CHECK_SECONDS:
            with self._lock:
                if now - self._checked >= POINTER_CHECK_SECONDS:
                    stamp = self._pointer_stamp()
                    if stamp != self._stamp or self._model is None:
                        self._reload(stamp)
                    self._checked = time.monotonic()
        if self._model is None:
            raise self._error or ModelError("There is no production model yet.")
        return self._model

    def _reload(self, stamp: Any) -> None:
        try:
            version = registry.production_version(self.models_dir)
            if self._model is None or version != self._model.version:
                self._model = registry.load_model(version, self.models_dir)
                log.info("serving model %s", self._model.version)
            self._error = None
        except TermDepositError as exc:
            self._error = exc
            log.error("could not load the production model: %s", exc)
        self._stamp = stamp

    @property
    def last_error(self) -> str | None:
        """Why the last (re)load failed, if it did."""
        return self._error.message if self._error else None
