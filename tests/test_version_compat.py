"""The shims in ``version_compat`` behave as Airflow's own names do, on every supported minor."""

from __future__ import annotations

import json
import threading

import pytest
from airflow.sdk import BaseOperator, Connection
from airflow.sdk._shared.secrets_masker import redact
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.comms import MaskSecret
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_codat import version_compat


class _Trigger(BaseTrigger):
    def serialize(self):
        return (f"{__name__}._Trigger", {})

    async def run(self):
        yield TriggerEvent({})


class _SupervisorComms:
    """Stands in for the supervisor's channel: records each message and the thread that sent it."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.sent: list[tuple[object, bool]] = []  # (message, sent from the event loop's thread)

    def send(self, msg):
        # Blocking here on the loop's thread would stall (or deadlock) the event loop.
        self.sent.append((msg, threading.get_ident() == self.loop_thread))

    async def asend(self, msg):
        self.sent.append((msg, False))


def test_defer_raises_the_task_deferred_of_version_compat():
    operator = BaseOperator(task_id="t")
    with pytest.raises(version_compat.TaskDeferred):
        operator.defer(trigger=_Trigger(), method_name="execute_complete")


def test_the_exceptions_are_the_ones_airflow_raises_and_catches():
    from airflow.sdk.bases import sensor as sensor_module

    # The sensor loop raises and catches these: the provider's must be the very same classes.
    assert sensor_module.AirflowSensorTimeout is version_compat.AirflowSensorTimeout
    assert sensor_module.AirflowSkipException is version_compat.AirflowSkipException
    assert sensor_module.AirflowRescheduleException is version_compat.AirflowRescheduleException


def test_conf_reads_airflow_configuration(monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert version_compat.conf.getboolean("operators", "default_deferrable", fallback=False) is True


def test_dagbag_is_imported_on_first_use_only():
    assert "DagBag" not in vars(version_compat)
    assert version_compat.DagBag.__name__ == "DagBag"
    with pytest.raises(AttributeError):
        _ = version_compat.NoSuchName


async def test_amask_secret_masks_and_tells_the_supervisor_off_the_event_loop(monkeypatch):
    comms = _SupervisorComms(threading.get_ident())
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    secret = "codat-compat-amask-0f6b2d"
    await version_compat.amask_secret(secret)

    assert redact(f"key {secret}") == "key ***"
    assert [(m.value, on_loop) for m, on_loop in comms.sent if isinstance(m, MaskSecret)] == [(secret, False)]


async def test_aextra_dejson_reads_and_masks_the_extra_off_the_event_loop(monkeypatch):
    comms = _SupervisorComms(threading.get_ident())
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    secret = "codat-compat-extra-7c1e94"
    conn = Connection(
        conn_id="c", conn_type="codat", extra=json.dumps({"webhook_secret": secret, "timeout": 5})
    )

    extra = await version_compat.aextra_dejson(conn)

    assert extra == {"webhook_secret": secret, "timeout": 5}
    assert redact(secret) == "***"
    assert comms.sent and not any(on_loop for _, on_loop in comms.sent)


@pytest.mark.parametrize(
    ("uri", "conn_id", "namespace"),
    [
        ("s3://aws_lake@my-bucket/codat/_tables", "aws_lake", "s3://my-bucket"),
        ("s3://my-bucket/codat", None, "s3://my-bucket"),
        ("file:///data/codat", None, "file"),
    ],
)
def test_a_storage_paths_connection_and_namespace_on_every_minor(uri, conn_id, namespace):
    from airflow.sdk import ObjectStoragePath

    path = ObjectStoragePath(uri) / "invoices"
    assert version_compat.object_storage_conn_id(path) == conn_id
    assert version_compat.object_storage_namespace(path) == namespace
