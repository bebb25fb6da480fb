"""How the tables' Parquet files are written: Snappy-compressed, in row groups of :data:`ROW_GROUP_ROWS` rows.

delta-rs holds a whole row group in memory while it writes one, and its default (about a million rows) made a
merge that rewrites a month of a 10-million-row table pass 1 GB. Smaller groups keep the writer's memory flat;
readers lose nothing (a file's groups are read in parallel, and their statistics still skip by company).

Properties given explicitly replace all of delta-rs's defaults, compression included: without ``compression``
the files came out uncompressed, four times the size, and a merge read and buffered four times the bytes.
Snappy is what Spark and delta-rs write by default, and of the codecs every reader takes, the quickest here.
"""

from __future__ import annotations

from deltalake import WriterProperties

ROW_GROUP_ROWS = 64 * 1024
COMPRESSION = "SNAPPY"


def writer_properties() -> WriterProperties:
    """The properties every merge and compaction writes with."""
    return WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression=COMPRESSION)
