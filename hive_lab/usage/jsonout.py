"""Indented JSON for the usage report, fast.

``json.dumps(doc, indent=2)`` falls back to the pure-Python encoder (CPython only uses its C
encoder without ``indent``): on a report of ~13,000 sessions that was 1.4 s and a list of
~1.6 million string pieces (~90 MB) before the join. orjson writes the same document in a few
milliseconds, as UTF-8 bytes with the same two-space layout; without orjson installed the
stdlib encoder still gives the same data.

Differences that do not change what the document means: orjson writes non-ASCII characters as
UTF-8 instead of ``\\uXXXX`` escapes, and some floats in another but equal notation
(``1e-5`` for ``1e-05``). NaN and infinities (never in a report) would become ``null``.
"""
from __future__ import annotations

import json
from typing import Any

try:  # a declared dependency; the fallback keeps the CLI working in a bare environment
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the fallback test through the flag
    _orjson = None  # type: ignore[assignment]

HAVE_ORJSON = _orjson is not None


def dumps_indented(obj: Any, fast: bool = True) -> bytes:
    """``obj`` as two-space indented JSON in UTF-8, without a trailing newline.

    ``fast=False`` (or no orjson) uses the stdlib encoder: the reference the tests compare
    against.
    """
    if fast and _orjson is not None:
        try:
            return _orjson.dumps(obj, option=_orjson.OPT_INDENT_2)
        except TypeError:  # e.g. an int beyond 64 bits: orjson refuses, the stdlib does not
            pass
    return json.dumps(obj, indent=2).encode()
