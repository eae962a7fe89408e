"""Key-range checksums: which hash ranges of a table differ between its source and its mirror, without copying rows.

Each side sums its rows per bucket of the key's hash (BUCKETS of them): the row count, a checksum of the keys,
and, where asked, of the rows' change stamps or of their whole content. Only the sums cross between the databases
(at most BUCKETS rows); the rows of the buckets that differ are then copied, and no others.

A bucket whose sums agree holds the same keys (and stamps, or content) on both sides, but for a hash collision of
64-bit sums. Two servers whose hash functions differ (another byte order) disagree on every
bucket: the staging then copies every range, which is slow but still right, never wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from psycopg import sql
from sqlalchemy.engine import Connection

BUCKETS = 1024  # a million rows: about a thousand a bucket, so a changed range costs a thousand rows
# Stamps are summed as their distance from this instant: exact to the microsecond, whatever the session's time zone.
_EPOCH = sql.SQL("timestamptz '2000-01-01 00:00:00+00'")
_SEPARATOR = sql.SQL("E'\\x1f'")  # between the parts of a key or a row: a character no value holds
_NULL = sql.SQL("E'\\x1e'")
SUMS_COLUMNS = ("bucket", "row_count", "key_sum", "stamp_sum", "content_sum")


def _key_text(key: Sequence[str], alias: str | None) -> sql.Composable:
    parts = [sql.SQL("{c}::text").format(c=_col(c, alias)) for c in key]
    if len(parts) == 1:
        return parts[0]
    return sql.SQL("concat_ws({sep}, {parts})").format(sep=_SEPARATOR, parts=sql.SQL(", ").join(parts))


def _col(name: str, alias: str | None) -> sql.Composable:
    return sql.Identifier(alias, name) if alias else sql.Identifier(name)


def key_hash(key: Sequence[str], alias: str | None = None) -> sql.Composable:
    return sql.SQL("hashtextextended({k}, 0)").format(k=_key_text(key, alias))


def bucket_of(key: Sequence[str], alias: str | None = None) -> sql.Composable:
    return sql.SQL("({h} & {mask})::integer").format(h=key_hash(key, alias), mask=sql.Literal(BUCKETS - 1))


def in_buckets(key: Sequence[str], buckets: Sequence[int], alias: str | None = None) -> sql.Composable:
    """A condition that holds for the rows of the given buckets (literals: COPY takes no bind parameters)."""
    if not buckets:
        return sql.SQL("false")
    listed = sql.SQL(", ").join(sql.Literal(int(b)) for b in buckets)
    return sql.SQL("{b} IN ({listed})").format(b=bucket_of(key, alias), listed=listed)


def _content_text(columns: Sequence[str], timestamps: frozenset[str]) -> sql.Composable:
    """A row's content as text the same on both servers: time stamps as their distance from a fixed instant, a
    null as a character no value holds (so that `a, null` and `null, a` differ)."""
    parts = []
    for c in columns:
        value = sql.SQL("({c} - {epoch})" if c in timestamps else "{c}").format(c=sql.Identifier(c), epoch=_EPOCH)
        parts.append(sql.SQL("coalesce({v}::text, {null})").format(v=value, null=_NULL))
    return sql.SQL("concat_ws({sep}, {parts})").format(sep=_SEPARATOR, parts=sql.SQL(", ").join(parts))


def sums_query(
    table: tuple[str, str],
    key: Sequence[str],
    *,
    where: sql.Composable | None = None,
    stamp: str | None = None,
    content: Sequence[str] = (),
    timestamps: frozenset[str] = frozenset(),
) -> sql.Composable:
    """Per bucket: rows, sum of key hashes, sum of stamps (as intervals), sum of the hashes of each row's key and
    content (0 where not asked)."""
    stamp_sum = (
        sql.SQL("sum({s} - {epoch})").format(s=sql.Identifier(stamp), epoch=_EPOCH)
        if stamp
        else sql.SQL("interval '0'")
    )
    # A row's content is hashed with its key: two rows of a range that swap their contents change the sum.
    content_sum = (
        sql.SQL("sum(hashtextextended(concat_ws({sep}, {k}, {t}), 0))").format(
            sep=_SEPARATOR, k=_key_text(key, None), t=_content_text(content, timestamps))
        if content
        else sql.SQL("0")
    )
    return sql.SQL(
        "SELECT {bucket} AS bucket, count(*) AS row_count, sum({h}) AS key_sum, {stamp_sum} AS stamp_sum,"
        " {content_sum} AS content_sum FROM {table} {where} GROUP BY 1"
    ).format(
        bucket=bucket_of(key),
        h=key_hash(key),
        stamp_sum=stamp_sum,
        content_sum=content_sum,
        table=sql.Identifier(*table),
        where=sql.SQL("WHERE {w}").format(w=where) if where is not None else sql.SQL(""),
    )


ReadSource = Callable[[sql.Composable], bytes]
Done = TypeVar("Done")


def beside(read_source: ReadSource, query: sql.Composable, web_work: Callable[[], Done]) -> tuple[bytes, Done]:
    """The source's `query` read on a connection of its own while `web_work` runs on the web connection: two
    passes of a second or more at a million rows, side by side on two cores. Both results."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        source = pool.submit(read_source, query)
        done = web_work()
        return source.result(), done


def differing_buckets(
    web: Connection, name: str, source_sums: sql.Composable, mirror_sums: sql.Composable, read_source: ReadSource
) -> list[int]:
    """The buckets whose sums differ.

    The source sums its rows on a connection of its own (`read_source`, the sums as COPY text) beside the web
    connection summing the mirror.
    """
    pg = web.connection.driver_connection
    source_table, mirror_table = f"_sums_source_{name}", f"_sums_mirror_{name}"
    for temp in (source_table, mirror_table):
        pg.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {t} (bucket integer PRIMARY KEY, row_count bigint,"
                " key_sum numeric, stamp_sum interval, content_sum numeric) ON COMMIT DROP"
            ).format(t=sql.Identifier(temp))
        )
        pg.execute(sql.SQL("TRUNCATE {t}").format(t=sql.Identifier(temp)))
    columns = sql.SQL(", ").join(map(sql.Identifier, SUMS_COLUMNS))
    text, _ = beside(read_source, source_sums, lambda: pg.execute(
        sql.SQL("INSERT INTO {t} ({c}) {q}").format(t=sql.Identifier(mirror_table), c=columns, q=mirror_sums)))
    with pg.cursor() as cur, cur.copy(
        sql.SQL("COPY {t} ({c}) FROM STDIN").format(t=sql.Identifier(source_table), c=columns)
    ) as copy:
        copy.write(text)
    rows = pg.execute(
        sql.SQL(
            "SELECT coalesce(s.bucket, m.bucket) FROM {s} s FULL JOIN {m} m ON m.bucket = s.bucket"
            " WHERE (s.row_count, s.key_sum, s.stamp_sum, s.content_sum)"
            " IS DISTINCT FROM (m.row_count, m.key_sum, m.stamp_sum, m.content_sum) ORDER BY 1"
        ).format(s=sql.Identifier(source_table), m=sql.Identifier(mirror_table))
    ).fetchall()
    return [int(r[0]) for r in rows]
