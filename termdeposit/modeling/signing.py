"""This installation's model signing key: HMAC-SHA256 signatures of a model's checksum list.

Every model saved here is signed, and a model is unpickled only when its signature matches
(see :mod:`termdeposit.modeling.registry` for why signing rather than another file format).
The key is either given whole in ``TERMDEPOSIT_SIGNING_KEY`` (e.g. from a secret manager) or
kept in a file, ``TERMDEPOSIT_KEY_FILE`` (default ``~/.config/termdeposit/signing.key``),
created on first use with a random 256-bit key readable by its owner only. The file must
not be inside the models folder: whoever can put a model there must not be able to sign it.
The key never appears in a log, a message or a model folder.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from termdeposit.core import config
from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger

log = get_logger("signing")

KEY_ENV = "TERMDEPOSIT_SIGNING_KEY"
KEY_FILE_ENV = "TERMDEPOSIT_KEY_FILE"


class SigningKeyError(TermDepositError):
    """The signing key cannot be read, created or is kept in an unsafe place."""


def _key_from_file(path: Path, models_root: Path | None) -> bytes:
    if models_root is not None and path.resolve().is_relative_to(models_root.resolve()):
        raise SigningKeyError(
            f"The model signing key file {path} is inside the models folder {models_root}: "
            "anyone who can put a model there could sign it too.",
            hint=f"Move it elsewhere and set {KEY_FILE_ENV} to its new place.",
        )
    if not path.is_file():
        _create_key_file(path)
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(
            f"The model signing key file {path} cannot be read ({type(exc).__name__}).",
            hint=f"Check its permissions, or set {KEY_FILE_ENV} to another file.",
        ) from exc
    if len(key) < 32:
        raise SigningKeyError(
            f"The model signing key file {path} is empty or too short.",
            hint="Restore it from a backup (models signed with the old key need it), or "
            "delete it to create a new key and trust your models again with "
            "'termdeposit models trust VERSION --reason ...'.",
        )
    return key.encode("ascii")


def _create_key_file(path: Path) -> None:
    """Write a new random key, readable by its owner only; a key another process created
    first wins (the file is linked into place, never overwritten)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
            log.info("created a new model signing key in %s", path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        raise SigningKeyError(
            f"Could not create the model signing key file {path} ({exc.strerror or exc}).",
            hint=f"Set {KEY_FILE_ENV} to a writable file outside the models folder.",
        ) from exc


def signing_key(models_root: Path | None = None) -> bytes:
    """This installation's signing key (created on first use when kept in a file).

    Args:
        models_root: the local models folder, which must not hold the key file.

    Raises:
        SigningKeyError: the key file is unreadable, too short, or inside the models folder.
    """
    value = os.environ.get(KEY_ENV, "")
    if value.strip():
        return value.strip().encode()
    return _key_from_file(config.signing_key_file(), models_root)


def sign(text: str, key: bytes) -> str:
    """The hex HMAC-SHA256 of a text (a model's checksum list) with the key."""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def signature_matches(text: str, signature: str, key: bytes) -> bool:
    """Whether a signature was made with this key for this text (constant-time compare)."""
    return hmac.compare_digest(signature.strip(), sign(text, key))
