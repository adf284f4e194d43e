"""Errors the user can fix: a bad input, a bad setting, a stage not run yet, a missing setup step.

``fusionrec`` prints such an error as one line and exits 2. Every other exception is a
bug in fusionrec (or in what it runs on) and is shown with its traceback (exit 1), so
that it is reported rather than mistaken for a wrong input.
"""

from __future__ import annotations

import json
from typing import Any


class UserError(Exception):
    """A problem the user fixes; the message is one line naming the file, table or setting."""


class InputError(UserError, ValueError):
    """A bad input: a path, file, command-line value or data the stage cannot use."""


class MissingInputError(UserError, FileNotFoundError):
    """A table or file that an earlier stage writes does not exist; the message names the stage."""


def parse_json(text: str) -> Any:
    """The data of a JSON document that a stage wrote (and a user may have edited).

    :raises InputError: the text is not JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc})") from None
