"""The health record's tables in Airflow's metadata database, each bounded by what it is keyed on.

=========================  ======================================================  =====================
``codat_health_type``      one row per (company, data type): its latest outcome    companies × types
``codat_health_company``   one row per (company, DAG): its types folded (the list) companies × DAGs
``codat_health_portfolio`` one row per company: the list across every DAG        companies
``codat_health_connection`` one row per (company, connection): its latest status    connections
``codat_health_minute``    requests sent per minute                                 the last 24 hours
``codat_health_day``       records landed per day                                   the last 30 days
``codat_health_meta``      named values: the fold's watermark, the last quota seen  a handful
=========================  ======================================================  =====================

The tables belong to this provider (Airflow's migrations do not know them): they are created on first use, as
the webhook inbox is.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text

from airflow_provider_codat.own_tables import OwnTables

KEEP_DAYS = 30

METADATA = MetaData()

TYPES = Table(
    "codat_health_type",
    METADATA,
    Column("company_id", String(64), primary_key=True),
    Column("data_type", String(64), primary_key=True),
    Column("company_name", String(256), nullable=True),
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("status", String(32), nullable=False),  # extracted, not_supported, failed
    Column("synced_at", DateTime(timezone=True), nullable=True),  # Codat's lastSuccessfulSync
    Column("landed_at", DateTime(timezone=True), nullable=True),  # the last run that landed it
    Column("landed_run_id", String(250), nullable=True),
    Column("records", Integer, nullable=True),  # records that run landed
    Column("table_rows", BigInteger, nullable=True),  # rows of the company in its current-state table
    Column("error", String(1000), nullable=True),
    Column("error_at", DateTime(timezone=True), nullable=True),
    Column("error_task", String(250), nullable=True),
    Column("error_run_id", String(250), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("codat_health_type_dag", "dag_id"),
)

#: What the list needs of a company's types, kept by the fold as it writes them (:func:`.record.summarise`): the
#: page's data call pages, filters, sorts and counts these rows in SQL instead of grouping every type row.
#: A company whose types are synced by two DAGs has a row per DAG (each DAG's schedule judges its types).
COMPANIES = Table(
    "codat_health_company",
    METADATA,
    Column("company_id", String(64), primary_key=True),
    Column("dag_id", String(250), primary_key=True),
    Column("company_name", String(256), nullable=True),
    Column("name_key", String(256), nullable=False),  # lower-cased name, for search and sort
    Column("oldest_landing", DateTime(timezone=True), nullable=True),  # the least recent type's landing
    Column("never_landed", Integer, nullable=False),  # types that never landed
    Column("failed", Integer, nullable=False),  # types whose latest outcome failed
    Column("last_error_at", DateTime(timezone=True), nullable=True),
    Index("codat_health_company_dag", "dag_id"),
)

#: The list across every DAG, one row per company, for a user who may read every DAG that recorded a company
#: (the common case: no grouping per view). ``due_at`` is when the company turns Late: the earliest of each
#: DAG's oldest landing plus the age that DAG's schedule allows, worked out at fold time.
PORTFOLIO = Table(
    "codat_health_portfolio",
    METADATA,
    Column("company_id", String(64), primary_key=True),
    Column("company_name", String(256), nullable=True),
    Column("name_key", String(256), nullable=False),
    Column("oldest_landing", DateTime(timezone=True), nullable=True),
    Column("due_at", DateTime(timezone=True), nullable=True),  # None with types never landed
    Column("never_landed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("last_error_at", DateTime(timezone=True), nullable=True),
)

CONNECTIONS = Table(
    "codat_health_connection",
    METADATA,
    Column("company_id", String(64), primary_key=True),
    Column("connection_id", String(64), primary_key=True),
    Column("company_name", String(256), nullable=True),
    Column("platform", String(128), nullable=True),
    Column("status", String(64), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

MINUTES = Table(
    "codat_health_minute",
    METADATA,
    Column("minute", BigInteger, primary_key=True),  # epoch seconds // 60
    Column("requests", Integer, nullable=False),
)

DAYS = Table(
    "codat_health_day",
    METADATA,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("records", BigInteger, nullable=False),
)

META = Table(
    "codat_health_meta",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


#: The health tables on Airflow's metadata database, created once per process.
TABLES = OwnTables(METADATA.sorted_tables)
