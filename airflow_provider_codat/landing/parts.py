"""Reading the landing's part files back: gzipped JSON lines, decimals kept digit for digit.

The current-state tables (``tables/``) and the reconcile (``extract/landed.py``) read what the extract wrote
(``extract/writer.py``) through these two.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgspec
from airflow.sdk import ObjectStoragePath

_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def read_part_file(uri: str) -> bytes:
    """The JSON lines of one part file, uncompressed.

    :param uri: the file's URI, as a manifest lists it.
    """
    # One read of the compressed bytes: gzip reading through a storage file object goes in small pieces.
    return gzip.decompress(ObjectStoragePath(uri).read_bytes())


def decode_records(data: bytes) -> Iterator[dict[str, Any]]:
    """The records of JSON lines, decimals as :class:`~decimal.Decimal` (every digit kept).

    :param data: JSON lines.
    """
    try:
        yield from _DECODER.decode_lines(data)
    except (
        msgspec.DecodeError
    ):  # a lone surrogate escape, which msgspec refuses: the standard library reads it
        for line in data.splitlines():
            if line.strip():
                yield json.loads(line, parse_float=Decimal)
