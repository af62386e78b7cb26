"""User errors on the command line: one message naming the culprit, no traceback, no parser dump.

jsonargparse wraps a bad value in several layers of "Does not validate against any of the Union
subtypes"; the useful parts are the ``Parser key`` names along the exception chain (the option) and
the innermost message (what was wrong).
"""

from __future__ import annotations

import importlib
import os
import re
from argparse import ArgumentError

from lightning.fabric.utilities.exceptions import MisconfigurationException

from debiaslit.errors import DataFormatError, DebiaslitError

#: Set to 1 to see the full traceback of a user error.
TRACEBACK_ENV = "DEBIASLIT_TRACEBACK"
HINT = f"(set {TRACEBACK_ENV}=1 for the full traceback)"

_KEY = re.compile(r'^Parser key "([^"]+)":')
_UNKNOWN_CLASS = re.compile(r"Expected a dot import path string: (\S+)|given class_path '([^']+)'")
_SUBTYPES = re.compile(r"<class '([\w.]+)'>")


def _chain(err: BaseException) -> list[BaseException]:
    out = [err]
    while (nxt := out[-1].__cause__ or out[-1].__context__) is not None and nxt not in out:
        out.append(nxt)
    return out


def user_error(err: BaseException) -> BaseException | None:
    """The exception to report for a user error anywhere in ``err``'s chain, or None for a bug."""
    chain = _chain(err)
    for kind in (DebiaslitError, MisconfigurationException, ArgumentError):
        found = next((e for e in chain if isinstance(e, kind)), None)
        if found is not None:
            return found
    return None


def _valid_names(chain: list[BaseException]) -> str:
    """Short names of our classes that fit the option's type (from the innermost 'Subtypes:' list)."""
    from jsonargparse._typehints import get_all_subclass_paths

    for e in reversed(chain):
        text = str(e)
        if "Subtypes:" not in text:
            continue
        line = next(x for x in text.splitlines() if "Subtypes:" in x)
        names: list[str] = []
        for path in _SUBTYPES.findall(line):
            module, _, name = path.rpartition(".")
            if module in ("builtins", ""):
                continue
            base = getattr(importlib.import_module(module), name)
            paths = get_all_subclass_paths(base)
            # the CLI's own callbacks are added by it, never configured: not offered as choices
            names += [
                p.rpartition(".")[2]
                for p in paths
                if p.startswith("debiaslit.") and not p.startswith("debiaslit.cli.")
            ]
        if names:
            return ", ".join(dict.fromkeys(names))
    return ""


def _clean(text: str) -> str:
    return re.sub(r"<class '(?:builtins\.)?([\w.]+)'>", r"\1", text.strip())


def format_user_error(err: BaseException) -> str:
    """One or two lines: what was wrong and where (option, file, line)."""
    found = user_error(err) or err
    if isinstance(found, ArgumentError):
        chain = _chain(found)
        keys = [m.group(1) for e in chain if (m := _KEY.match(str(e)))]
        key = ".".join(dict.fromkeys(keys))
        reason = _clean(str(chain[-1]).splitlines()[0]) if str(chain[-1]).strip() else _clean(str(found))
        unknown = next((m for e in reversed(chain) if (m := _UNKNOWN_CLASS.search(str(e)))), None)
        if unknown is not None and "import path" in unknown.group(0):
            valid = _valid_names(chain)
            reason = f"unknown class '{unknown.group(1)}'" + (f"; valid: {valid}" if valid else "")
        message = f"{key}: {reason}" if key else reason
    else:
        message = _clean(str(found))
    if isinstance(found, DataFormatError):
        message += f"\n(relative paths are taken from the working directory {os.getcwd()})"
    return message
