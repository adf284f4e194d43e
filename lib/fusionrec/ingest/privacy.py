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
from typing import Mapping

from pyspark.sql import Column
from pyspark.sql import functions as F

from fusionrec.config import Config
from fusionrec.errors import UserError

log = logging.getLogger(__name__)

BLOCK_SIZE = 64
PSEUDONYM_HEX = 32


class PrivacyError(UserError, RuntimeError):
    """The pseudonymisation key is missing where it is mandatory."""


def pseudonym_key(cfg: Config, env: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key from ``$<ingest.pseudonym_key_env>``.

    In ``cluster`` mode the variable is mandatory; in ``local`` mode a development key is
    used instead and a warning is logged (pseudonyms are then only as secret as the config).
    """
    env = os.environ if env is None else env
    name = cfg.ingest.pseudonym_key_env
    value = env.get(name, "")
    if value:
        return value.encode("utf-8")
    if cfg.mode != "local":
        raise PrivacyError(f"${name} is not set: user ids cannot be pseudonymised in {cfg.mode} mode "
                           f"(export a secret key in {name})")
    log.warning("$%s is not set: pseudonymising user ids with the development key "
                "(set it for any data that is not synthetic)", name)
    return cfg.ingest.dev_pseudonym_key.encode("utf-8")


def _padded(key: bytes) -> bytes:
    if len(key) > BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    return key.ljust(BLOCK_SIZE, b"\0")


def pseudonymise(user_id: Column, key: bytes) -> Column:
    """``HMAC-SHA256(key, utf8(user_id))`` as lowercase hex, truncated to 128 bits; null stays null."""
    padded = _padded(key)
    inner_pad = F.lit(bytes(b ^ 0x36 for b in padded))
    outer_pad = F.lit(bytes(b ^ 0x5C for b in padded))
    inner = F.unhex(F.sha2(F.concat(inner_pad, F.encode(user_id, "UTF-8")), 256))
    outer = F.sha2(F.concat(outer_pad, inner), 256)
    return F.substring(outer, 1, PSEUDONYM_HEX)


def pseudonymise_py(user_id: str, key: bytes) -> str:
    """The same pseudonym computed in Python (for look-ups and tests)."""
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]
