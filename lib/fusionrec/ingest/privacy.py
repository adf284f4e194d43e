"""Keyed-hash pseudonymisation of user ids (HMAC-SHA256 in Spark SQL, no UDF).

HMAC (RFC 2104): ``HMAC(K, m) = H((K' xor opad) || H((K' xor ipad) || m))`` where ``K'`` is
the key padded with zeros to the hash block size (64 bytes for SHA-256; keys longer than
that are first hashed), ``ipad = 0x36``, ``opad = 0x5c`` repeated. The two padded keys are
constants computed once on the driver, so the per-row work is two ``sha2`` calls. The
pseudonym is the first :data:`PSEUDONYM_HEX` hex digits (128 bits) of the HMAC: stable for
a given key, and not reversible or linkable without the key (unlike a plain hash, which
anyone can recompute for a guessed id).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Mapping

from typing import TYPE_CHECKING

from fusionrec.config import Config
from fusionrec.errors import UserError
from fusionrec.lake import normalise_uri

if TYPE_CHECKING:  # pyspark only where Spark computes pseudonyms: serving imports this module without it
    from pyspark.sql import Column

log = logging.getLogger(__name__)

__all__ = ["KEY_DIR", "KEY_FILE_ENV_SUFFIX", "PSEUDONYM_HEX", "PrivacyError", "key_file", "pseudonym",
           "pseudonym_key", "pseudonymise", "serving_key"]

BLOCK_SIZE = 64
PSEUDONYM_HEX = 32
#: Length of a generated local key (the SHA-256 output size: longer adds nothing to HMAC).
KEY_BYTES = 32
#: Folder of the generated local keys: one file per lake.
KEY_DIR = Path("~/.fusionrec/keys")
#: ``$<ingest.pseudonym_key_env><suffix>`` names a key file (serving reads the key from it).
KEY_FILE_ENV_SUFFIX = "_FILE"


class PrivacyError(UserError, RuntimeError):
    """The pseudonymisation key is missing or unusable."""


def pseudonym_key(cfg: Config, *, env: Mapping[str, str] | None = None, master: str | None = None) -> bytes:
    """The HMAC key of the user-id pseudonyms; every user of the key calls this.

    1. ``$<ingest.pseudonym_key_env>`` (its UTF-8 bytes) when set;
    2. on a cluster (``mode`` is not ``local``, or ``master`` - the running Spark master,
       ``spark.master`` by default - is not ``local[...]``): :class:`PrivacyError`;
    3. locally: the key file (:func:`key_file`), created on first use with 32 random bytes.

    Parameters
    ----------
    cfg : the configuration (``ingest.pseudonym_key_env``, ``ingest.pseudonym_key_file``,
        ``lake.root``, ``mode``).
    env : environment to read the variable from (``os.environ`` when None).
    master : the Spark master in use, when known.

    Returns
    -------
    The key bytes. Never log or store them.

    Example
    -------
    >>> key = pseudonym_key(cfg)  # doctest: +SKIP
    """
    env = os.environ if env is None else env
    name = cfg.ingest.pseudonym_key_env
    value = env.get(name, "")
    if value:
        return value.encode("utf-8")
    master = cfg.spark.master if master is None else master
    if cfg.mode != "local" or (master is not None and not master.startswith("local")):
        raise PrivacyError(f"${name} is not set: user ids cannot be pseudonymised on a cluster "
                           f"(mode {cfg.mode}, master {master}); pass a secret key in {name} to the driver")
    path = key_file(cfg)
    if "://" not in cfg.lake.root and path.resolve().is_relative_to(Path(cfg.lake.root).expanduser().resolve()):
        raise PrivacyError(f"ingest.pseudonym_key_file: {path} is inside lake.root; keep the key outside the lake")
    return _local_key(path)


def key_file(cfg: Config) -> Path:
    """Where the local key of ``cfg``'s lake is kept: ``ingest.pseudonym_key_file``, or
    ``~/.fusionrec/keys/<sha256 of the lake root URI>.key`` - outside the lake, so that
    copies of the tables do not carry it."""
    if cfg.ingest.pseudonym_key_file:
        return Path(cfg.ingest.pseudonym_key_file).expanduser()
    return KEY_DIR.expanduser() / f"{hashlib.sha256(normalise_uri(cfg.lake.root).encode('utf-8')).hexdigest()}.key"


def serving_key(*, env_name: str, local_key_file: str | None, env: Mapping[str, str] | None = None) -> bytes:
    """The pseudonym key where a model serves requests by raw user id; never created here.

    1. ``$<env_name>`` (its UTF-8 bytes), as at ingest;
    2. the key file named by ``$<env_name>_FILE`` (a mounted secret, say);
    3. ``local_key_file``, the lake's local key file recorded (as a path) by the model, if it
       exists on this machine.

    Parameters
    ----------
    env_name : the variable of the key (``ingest.pseudonym_key_env`` of the lake).
    local_key_file : path of the lake's local key file, or None.
    env : environment to read (``os.environ`` when None).

    Returns
    -------
    The key bytes. Never log or store them.

    Raises
    ------
    PrivacyError : none of the three is there, or the file is unusable.

    Example
    -------
    >>> serving_key(env_name="K", local_key_file=None, env={"K": "secret"})
    b'secret'
    """
    env = os.environ if env is None else env
    value = env.get(env_name, "")
    if value:
        return value.encode("utf-8")
    named = env.get(env_name + KEY_FILE_ENV_SUFFIX, "")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise PrivacyError(f"${env_name}{KEY_FILE_ENV_SUFFIX}: no key file at {path}")
        return _read_key(path)
    if local_key_file and Path(local_key_file).expanduser().is_file():
        return _read_key(Path(local_key_file).expanduser())
    raise PrivacyError(f"${env_name} is not set (nor ${env_name}{KEY_FILE_ENV_SUFFIX}"
                       + (f", and there is no key file at {local_key_file}" if local_key_file else "")
                       + "): raw user ids cannot be pseudonymised; give the server the key the lake was ingested with")


def pseudonym(user_id: str, *, key: bytes) -> str:
    """The pseudonym of one raw ``user_id``: what :func:`pseudonymise` computes in Spark.

    Example
    -------
    >>> pseudonym("alice", key=b"k") == hmac.new(b"k", b"alice", "sha256").hexdigest()[:PSEUDONYM_HEX]
    True
    """
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]


def _local_key(path: Path) -> bytes:
    """Read the key at ``path``, creating it (owner-only: file 0600, folder 0700) if absent.

    Created under a temporary name and hard-linked into place, so concurrent first runs
    agree on one key and no reader sees a partial file.
    """
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(KEY_BYTES) + "\n")
            try:
                os.link(tmp, path)
                log.warning("pseudonym key created at %s (owner-only; keep it to keep the pseudonyms stable)", path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    """The key in the hex key file ``path`` (refused if group or others may read it)."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise PrivacyError(f"{path}: pseudonym key readable by others (mode {mode:04o}); run chmod 600 {path}")
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise PrivacyError(f"{path}: unusable pseudonym key file ({exc.__class__.__name__}); "
                           "restore it, or delete it to start new pseudonyms") from None


def _padded(key: bytes) -> bytes:
    if len(key) > BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    return key.ljust(BLOCK_SIZE, b"\0")


def pseudonymise(user_id: Column, key: bytes) -> Column:
    """``HMAC-SHA256(key, utf8(user_id))`` as lowercase hex, truncated to 128 bits; null stays null."""
    from pyspark.sql import functions as F

    padded = _padded(key)
    inner_pad = F.lit(bytes(b ^ 0x36 for b in padded))
    outer_pad = F.lit(bytes(b ^ 0x5C for b in padded))
    inner = F.unhex(F.sha2(F.concat(inner_pad, F.encode(user_id, "UTF-8")), 256))
    outer = F.sha2(F.concat(outer_pad, inner), 256)
    return F.substring(outer, 1, PSEUDONYM_HEX)
