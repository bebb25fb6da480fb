"""What one extract run is asked to do: :class:`ExtractRequest`, built once from checked values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import DataType, get_data_type
from airflow_provider_codat.extract.writer import (
    DEFAULT_COMPRESSLEVEL,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_RECORDS,
)
from airflow_provider_codat.landing.destination import destination_path
from airflow_provider_codat.landing.layout import run_folder_name
from airflow_provider_codat.values import CompanyId, ConnectionId

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

DEFAULT_MAX_PASSES = 3
DEFAULT_LOG_INTERVAL = 10.0


@dataclass
class ExtractRequest:
    """Everything one run needs, checked beforehand (build it with :meth:`for_run`).

    :param company_id: the checked company id.
    :param data_type: the catalogue entry.
    :param type_folder: ``{destination}/{company_id}/{data_type}``.
    :param run_id: the Airflow run id (names the run folder; a run that committed is never read again).
    :param run_folder_name: the run folder's name under ``type_folder`` (``run={run_id}``).
    :param known_synced: the caller knows a sync of the type completed (a ``read.completed`` webhook): skip the
        ``dataStatus`` check before reading (full types still check, around their offset read).
    :param connection_id: read only this connection (connection-scoped types).
    """

    company_id: CompanyId
    data_type: DataType
    type_folder: ObjectStoragePath
    run_id: str
    run_folder_name: str
    include_deleted: bool = True
    full_refresh: bool = False
    page_size: int = 1000
    connection_id: ConnectionId | None = None
    report_params: dict[str, Any] = field(default_factory=dict)
    max_passes: int = DEFAULT_MAX_PASSES
    known_synced: bool = False
    max_file_bytes: int = DEFAULT_MAX_BYTES
    max_file_records: int = DEFAULT_MAX_RECORDS
    compresslevel: int = DEFAULT_COMPRESSLEVEL
    log_interval: float = DEFAULT_LOG_INTERVAL

    @property
    def run_folder(self) -> ObjectStoragePath:
        return self.type_folder / self.run_folder_name

    @classmethod
    def for_run(
        cls,
        *,
        company_id: CompanyId,
        data_type: DataType,
        destination: str | ObjectStoragePath,
        run_id: str,
        connection_id: ConnectionId | None = None,
        **options: Any,
    ) -> ExtractRequest:
        """The request of one Airflow run: the folders follow from the destination, the company, the type and
        the run id (``{destination}/{company_id}/{data_type}/run={run_id}``).

        Checked values pass through as they are (parsing them again is free); anything else is checked here.

        :param company_id: the checked company id.
        :param data_type: the catalogue entry.
        :param destination: a checked storage URI, or an ``ObjectStoragePath``.
        :param run_id: the Airflow run id.
        :param connection_id: the checked connection id, to read only that connection.
        :param options: the other fields (``include_deleted``, ``page_size``, ...), already checked.
        """
        company_id = CompanyId.parse(company_id, "company_id")
        data_type = get_data_type(data_type)
        return cls(
            company_id=company_id,
            data_type=data_type,
            type_folder=destination_path(destination) / str(company_id) / data_type.key,
            run_id=run_id,
            run_folder_name=run_folder_name(run_id),
            connection_id=ConnectionId.parse(connection_id, "connection_id") if connection_id else None,
            **options,
        )
