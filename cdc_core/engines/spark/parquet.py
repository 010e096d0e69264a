"""Parquet files for the Spark engine: one file at the path the DuckDB engine writes, with the same schema.

Spark writes a folder of part files; the lake and the commit protocol want one file per key. So a result is
written by one task (a shuffle into one partition after the work, which stays distributed) into a folder beside the target, and
its single part file is moved onto the target. Spark cannot add Parquet key-value metadata, and the timestamp
layouts travel there (`types.read_layouts`): the footer's key-value list is replaced in place — the data pages
and every offset stay as they are; the key-value list becomes exactly the DuckDB engine's (Spark's own schema
keys are dropped, so both engines' files read back with the same Arrow schema).

Types go by the names DuckDB gives them (`DESCRIBE`), read from the Parquet footer with pyarrow, so the Spark
side compares, reports and writes types exactly as the DuckDB engine does.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ...errors import InputError
from ...types import DECIMAL, layouts_metadata

CODECS = {"snappy": "snappy", "zstd": "zstd", "gzip": "gzip", "lz4": "lz4_raw", "none": "uncompressed",
          "uncompressed": "uncompressed"}
SPARK_TYPES = {"VARCHAR": "string", "BIGINT": "bigint", "INTEGER": "int", "SMALLINT": "smallint",
               "TINYINT": "tinyint", "DOUBLE": "double", "FLOAT": "float", "BOOLEAN": "boolean", "DATE": "date",
               "TIMESTAMP WITH TIME ZONE": "timestamp", "TIMESTAMP": "timestamp_ntz", "BLOB": "binary",
               "UINTEGER": "bigint", "USMALLINT": "int", "UTINYINT": "smallint", "UBIGINT": "decimal(20,0)",
               "NULL": "string"}


def spark_type(duckdb_type: str) -> str:
    """The Spark type (DDL) a DuckDB/lake type is held as; InputError for types the Spark engine does not hold."""
    match = DECIMAL.fullmatch(duckdb_type.replace(" ", ""))
    if match:
        return f"decimal({match[1]},{match[2]})"
    if duckdb_type in SPARK_TYPES:
        return SPARK_TYPES[duckdb_type]
    raise InputError(f"the spark engine cannot hold a {duckdb_type} column — use the duckdb engine for this table, "
                     "or cast the column to text at the source")


def duckdb_type(kind: pa.DataType) -> str:
    """The type name DuckDB's `DESCRIBE` gives a Parquet column of this Arrow type."""
    if pa.types.is_dictionary(kind):
        return duckdb_type(kind.value_type)
    simple = {pa.string(): "VARCHAR", pa.large_string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER",
              pa.int16(): "SMALLINT", pa.int8(): "TINYINT", pa.uint8(): "UTINYINT", pa.uint16(): "USMALLINT",
              pa.uint32(): "UINTEGER", pa.uint64(): "UBIGINT", pa.float64(): "DOUBLE", pa.float32(): "FLOAT",
              pa.bool_(): "BOOLEAN", pa.date32(): "DATE", pa.binary(): "BLOB", pa.large_binary(): "BLOB",
              pa.null(): "INTEGER"}
    if kind in simple:
        return simple[kind]
    if pa.types.is_decimal(kind):
        return f"DECIMAL({kind.precision},{kind.scale})"
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            return "TIMESTAMP WITH TIME ZONE"
        return {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "ns": "TIMESTAMP_NS"}.get(kind.unit, "TIMESTAMP")
    return str(kind).upper()  # time, lists, structs…: named so that `spark_type` refuses them in one line


def file_types(path: Path) -> dict[str, str]:
    """A Parquet file's exact column names → the type DuckDB reads each as."""
    return {f.name: duckdb_type(f.type) for f in pq.read_schema(path)}


def file_rows(path: Path) -> int:
    return pq.read_metadata(path).num_rows


def write_single(df, path: Path, *, compression: str, layouts: dict[str, str] | None = None,
                 order: list[str] | None = None) -> Path:
    """Write `df` as one Parquet file at `path`, the layouts in the key-value metadata; ordered by the columns
    `order` (left out of the file: they start with `__cdc_`).

    Which columns are `required` (never NULL) in the footer is each engine's own inference, as with DuckDB from
    one file to the next; readers take both alike."""
    df = df.repartition(1)  # the work before stays spread over the executors; one task writes the file
    if order:
        df = df.sortWithinPartitions(*order).drop(*order)
    folder = path.parent / f".{path.name}.spark-{uuid.uuid4().hex[:8]}"
    try:
        (df.write.mode("error").option("compression", CODECS[compression])
         .parquet(str(folder)))
        parts = sorted(folder.glob("part-*.parquet"))
        if len(parts) != 1:
            raise InputError(f"Spark wrote {len(parts)} part files for {path.name}, not one — report this as a bug")
        os.replace(parts[0], path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    set_key_value_metadata(path, layouts_metadata(layouts or {}) or {})
    return path


# --- the footer's key-value list (Thrift compact protocol, FileMetaData field 5) -----------------------------

def set_key_value_metadata(path: Path, pairs: dict[bytes, bytes]) -> None:
    """Replace the key-value metadata of a Parquet file's footer with `pairs`; data pages are not touched."""
    with open(path, "r+b") as f:
        f.seek(-8, os.SEEK_END)
        tail = f.read(8)
        if tail[4:] != b"PAR1":
            raise InputError(f"{path} is not a Parquet file — report this as a bug")
        size = int.from_bytes(tail[:4], "little")
        start = f.seek(-8 - size, os.SEEK_END)
        footer = _rewrite(f.read(size), pairs)
        f.seek(start)
        f.write(footer + len(footer).to_bytes(4, "little") + b"PAR1")
        f.truncate()


def _rewrite(footer: bytes, pairs: dict[bytes, bytes]) -> bytes:
    """FileMetaData with field 5 (key_value_metadata) replaced; the other fields' bytes are kept."""
    fields, pos = [], 0
    while footer[pos] != 0:  # the struct's fields, each (id, type, raw value bytes)
        head = footer[pos]
        delta, kind = head >> 4, head & 0x0F
        pos += 1
        if delta:
            fid = (fields[-1][0] if fields else 0) + delta
        else:
            raw, pos = _varint(footer, pos)
            fid = (raw >> 1) ^ -(raw & 1)
        end = _skip(footer, pos, kind)
        fields.append((fid, kind, footer[pos:end]))
        pos = end
    fields = [f for f in fields if f[0] != 5]
    if pairs:
        items = b"".join(b"\x18" + _bytes(k) + b"\x18" + _bytes(v) + b"\x00" for k, v in pairs.items())
        fields.append((5, 9, _list_header(len(pairs), 12) + items))
    out, last = bytearray(), 0
    for fid, kind, raw in sorted(fields, key=lambda f: f[0]):
        out += bytes([(fid - last) << 4 | kind]) if 0 < fid - last <= 15 else bytes([kind]) + _zigzag(fid)
        out += raw
        last = fid
    return bytes(out + b"\x00")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        if value < 0x80:
            return bytes(out + bytes([value]))
        out.append(value & 0x7F | 0x80)
        value >>= 7


def _zigzag(value: int) -> bytes:
    return _uvarint((value << 1) ^ (value >> 63))


def _bytes(data: bytes) -> bytes:
    return _uvarint(len(data)) + data


def _list_header(size: int, kind: int) -> bytes:
    return bytes([size << 4 | kind]) if size < 15 else bytes([0xF0 | kind]) + _uvarint(size)


def _skip(data: bytes, pos: int, kind: int) -> int:
    """The position after one value of compact-protocol type `kind` starting at `pos`."""
    if kind in (1, 2):  # booleans live in the field header
        return pos
    if kind == 3:
        return pos + 1
    if kind in (4, 5, 6):
        return _varint(data, pos)[1]
    if kind == 7:
        return pos + 8
    if kind == 8:
        size, pos = _varint(data, pos)
        return pos + size
    if kind in (9, 10):
        head = data[pos]
        pos += 1
        size, elem = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _varint(data, pos)
        for _ in range(size):
            pos = pos + 1 if elem in (1, 2) else _skip(data, pos, elem)
        return pos
    if kind == 11:
        size, pos = _varint(data, pos)
        if size:
            kinds = data[pos]
            pos += 1
            for _ in range(size):
                pos = _skip(data, _skip(data, pos, kinds >> 4), kinds & 0x0F)
        return pos
    if kind == 12:
        while data[pos] != 0:
            head = data[pos]
            pos += 1
            if not head >> 4:
                pos = _varint(data, pos)[1]
            pos = _skip(data, pos, head & 0x0F)
        return pos + 1
    raise InputError(f"unexpected Thrift type {kind} in a Parquet footer — report this as a bug")
