"""Stage one source table into its mirror in schema `userdebtor`, in bulk.

ERP rows cross databases by COPY (streamed, bounded memory); web rows are read in place. A mirror row
gets a new `change_seq` only when its content changed, so plans can ask "what changed since".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection, Engine

# Rows stamped a little before the watermark are read again: a transaction that committed late with an
# earlier stamp is not missed. Reading a row twice costs nothing: unchanged rows keep their change_seq.
WATERMARK_OVERLAP = timedelta(minutes=5)
# A mirror that took this many changed rows is analyzed at once: the plans of the same run join it, and
# autovacuum's analyze may come minutes later (a first load planned on a mirror thought empty runs for hours).
ANALYZE_AFTER_ROWS = 10_000


@dataclass(frozen=True)
class ExtractSpec:
    name: str  # also the watermark's name
    source: tuple[str, str]  # (schema, table)
    mirror: str  # table in schema userdebtor
    key: tuple[str, ...]
    columns: tuple[str, ...]  # copied columns, key included
    changed_column: str | None  # the source's last-change stamp; None: always read whole
    deletes: Literal["always", "full_only"] = "always"
    extra_columns: tuple[str, ...] = ()  # mirror columns computed before the merge (e.g. scope flags)
    tracks_changes: bool = True  # the mirror has change_seq
    gone_table: str | None = None  # where the keys of deleted rows are recorded, with a change_seq (one-column keys)


@dataclass
class ExtractResult:
    read: int = 0
    changed: int = 0
    deleted: int = 0
    mode: str = "changed_since"
    watermark: datetime | None = None


def _ident(*names: str) -> sql.Composable:
    return sql.Identifier(*names)


def _cols(names: tuple[str, ...], prefix: str | None = None) -> sql.Composable:
    if prefix:
        return sql.SQL(", ").join(sql.Identifier(prefix, n) for n in names)
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def read_watermark(conn: Connection, name: str) -> tuple[datetime | None, str | None]:
    row = conn.execute(
        sa.text("SELECT value, note FROM userdebtor.watermark WHERE name = :n"), {"n": name}
    ).one_or_none()
    return (row[0], row[1]) if row else (None, None)


def write_watermark(conn: Connection, name: str, value: datetime | None, note: str | None = None) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO userdebtor.watermark (name, value, note, updated_at) VALUES (:n, :v, :note, now())"
            " ON CONFLICT (name) DO UPDATE SET value = coalesce(excluded.value, watermark.value),"
            " note = coalesce(excluded.note, watermark.note), updated_at = now()"
        ),
        {"n": name, "v": value, "note": note},
    )


def _source_query(spec: ExtractSpec, since: datetime | None, columns: tuple[str, ...]) -> sql.Composable:
    query = sql.SQL("SELECT {cols} FROM {table}").format(cols=_cols(columns), table=_ident(*spec.source))
    if since is not None and spec.changed_column:
        # COPY takes no bind parameters; the watermark (our own timestamp, never a setting) is quoted by psycopg.
        query = sql.SQL("{q} WHERE {col} >= {since}").format(
            q=query, col=_ident(spec.changed_column), since=sql.Literal(since - WATERMARK_OVERLAP)
        )
    return query


def copy_into_temp(
    source: Engine | Connection, query: sql.Composable, web: Connection, temp: str, columns: tuple[str, ...]
) -> None:
    """Stream a query's rows from one database into a temp table of the web database, by COPY.

    A web table is already in this database: it is read in place, in the same transaction.
    """
    dst = web.connection.driver_connection
    if source is web:
        dst.execute(sql.SQL("INSERT INTO {t} ({c}) {q}").format(t=_ident(temp), c=_cols(columns), q=query))
        return
    src_conn = source if isinstance(source, Connection) else source.connect()
    try:
        src = src_conn.connection.driver_connection
        copy_out = sql.SQL("COPY ({q}) TO STDOUT").format(q=query)
        copy_in = sql.SQL("COPY {t} ({c}) FROM STDIN").format(t=_ident(temp), c=_cols(columns))
        with src.cursor() as scur, dst.cursor() as dcur:
            with scur.copy(copy_out) as out, dcur.copy(copy_in) as inp:
                for chunk in out:
                    inp.write(chunk)
    finally:
        if src_conn is not source:
            src_conn.rollback()
            src_conn.close()


def _merge(web: Connection, spec: ExtractSpec, temp: str) -> int:
    """Upsert the temp rows into the mirror; only rows whose content changed get a new change_seq.

    Rows already in the mirror as they are are left out before the upsert: ON CONFLICT DO UPDATE locks (and
    WAL-logs) every conflicting row even when its WHERE keeps it unchanged, so a table read whole every run
    would rewrite a lock on each of its rows (at a million web customers, 5.6 s a run instead of 2).
    """
    all_cols = spec.columns + spec.extra_columns
    non_key = tuple(c for c in all_cols if c not in spec.key)
    mirror = _ident("userdebtor", spec.mirror)
    same_key = sql.SQL(" AND ").join(sql.SQL("o.{c} = t.{c}").format(c=_ident(c)) for c in spec.key)
    if spec.tracks_changes:
        insert_cols = _cols(all_cols + ("change_seq",))
        select_cols = sql.SQL("{c}, nextval('userdebtor.change_seq')").format(c=_cols(all_cols, "t"))
        set_list = sql.SQL(", ").join(
            [sql.SQL("{c} = excluded.{c}").format(c=_ident(c)) for c in non_key + ("change_seq",)]
        )
    else:
        insert_cols = _cols(all_cols)
        select_cols = _cols(all_cols, "t")
        set_list = sql.SQL(", ").join([sql.SQL("{c} = excluded.{c}").format(c=_ident(c)) for c in non_key])
    if not non_key:  # a table of keys only (e.g. who acts for which account): new rows in, nothing to update
        statement = sql.SQL(
            "INSERT INTO {mirror} ({cols}) SELECT {t_cols} FROM {temp} t"
            " WHERE NOT EXISTS (SELECT 1 FROM {mirror} o WHERE {same_key}) ON CONFLICT DO NOTHING"
        ).format(mirror=mirror, cols=_cols(all_cols), t_cols=_cols(all_cols, "t"), temp=_ident(temp),
                 same_key=same_key)
        cur = web.connection.driver_connection.cursor()
        cur.execute(statement)
        return cur.rowcount
    statement = sql.SQL(
        "INSERT INTO {mirror} AS m ({insert_cols}) SELECT {select_cols} FROM {temp} t"
        " WHERE NOT EXISTS (SELECT 1 FROM {mirror} o WHERE {same_key} AND ({o_cols}) IS NOT DISTINCT FROM ({t_cols}))"
        " ON CONFLICT ({key}) DO UPDATE SET {set_list} WHERE ({old}) IS DISTINCT FROM ({new})"
    ).format(
        mirror=mirror,
        insert_cols=insert_cols,
        select_cols=select_cols,
        temp=_ident(temp),
        same_key=same_key,
        o_cols=_cols(non_key, "o"),
        t_cols=_cols(non_key, "t"),
        key=_cols(spec.key),
        set_list=set_list,
        old=_cols(non_key, "m"),
        new=_cols(non_key, "excluded"),
    )
    cur = web.connection.driver_connection.cursor()
    cur.execute(statement)
    return cur.rowcount


def _delete_missing(web: Connection, spec: ExtractSpec, keys_table: str) -> int:
    statement = sql.SQL("DELETE FROM {mirror} m WHERE NOT EXISTS (SELECT 1 FROM {keys} k WHERE {match})").format(
        mirror=_ident("userdebtor", spec.mirror),
        keys=_ident(keys_table),
        match=sql.SQL(" AND ").join(sql.SQL("k.{c} = m.{c}").format(c=_ident(c)) for c in spec.key),
    )
    if spec.gone_table:
        # The plans of this and later runs find what went by change_seq, without comparing whole tables.
        statement = sql.SQL(
            "WITH gone AS ({delete} RETURNING m.{key}) INSERT INTO {log} ({key}) SELECT {key} FROM gone"
            " ON CONFLICT ({key}) DO UPDATE SET change_seq = nextval('userdebtor.change_seq')"
        ).format(delete=statement, key=_ident(spec.key[0]), log=_ident("userdebtor", spec.gone_table))
    cur = web.connection.driver_connection.cursor()
    cur.execute(statement)
    return cur.rowcount


def stage(
    spec: ExtractSpec,
    *,
    source: Engine | Connection,
    web: Connection,
    full: bool,
    before_merge: Callable[[Connection, str], None] | None = None,
    detect_deletes: bool = True,
) -> ExtractResult:
    """Stage one table: copy (changed-since or whole), compute extra columns, merge, drop vanished rows.

    `web` is a connection in an open transaction: the mirror and its watermark move together.
    """
    result = ExtractResult(mode="full" if full else "changed_since")
    watermark, _ = read_watermark(web, spec.name)
    since = None if (full or spec.changed_column is None) else watermark
    if since is None:
        result.mode = "full"
    temp = f"_in_{spec.mirror}"
    pg = web.connection.driver_connection
    pg.execute(
        sql.SQL("CREATE TEMP TABLE {t} ON COMMIT DROP AS SELECT * FROM {m} WITH NO DATA").format(
            t=_ident(temp), m=_ident("userdebtor", spec.mirror)
        )
    )
    copy_into_temp(source, _source_query(spec, since, spec.columns), web, temp, spec.columns)
    result.read = pg.execute(sql.SQL("SELECT count(*) FROM {t}").format(t=_ident(temp))).fetchone()[0]
    pg.execute(sql.SQL("ANALYZE {t}").format(t=_ident(temp)))
    if before_merge is not None:
        before_merge(web, temp)
    result.changed = _merge(web, spec, temp)

    if not detect_deletes:
        pass
    elif result.mode == "full":
        result.deleted = _delete_missing(web, spec, temp)
    elif spec.deletes == "always":
        keys = f"_keys_{spec.mirror}"
        pg.execute(
            sql.SQL("CREATE TEMP TABLE {k} ON COMMIT DROP AS SELECT {c} FROM {m} WITH NO DATA").format(
                k=_ident(keys), c=_cols(spec.key), m=_ident("userdebtor", spec.mirror)
            )
        )
        key_query = sql.SQL("SELECT {c} FROM {t}").format(c=_cols(spec.key), t=_ident(*spec.source))
        copy_into_temp(source, key_query, web, keys, spec.key)
        pg.execute(sql.SQL("ANALYZE {k}").format(k=_ident(keys)))
        result.deleted = _delete_missing(web, spec, keys)

    if result.changed + result.deleted >= ANALYZE_AFTER_ROWS:
        pg.execute(sql.SQL("ANALYZE {m}").format(m=_ident("userdebtor", spec.mirror)))

    if spec.changed_column:
        newest = pg.execute(
            sql.SQL("SELECT max({c}) FROM {t}").format(c=_ident(spec.changed_column), t=_ident(temp))
        ).fetchone()[0]
        result.watermark = newest or watermark
        write_watermark(web, spec.name, result.watermark)
    return result
