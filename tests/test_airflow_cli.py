from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.slow


def test_dags_test_reports_task_states_and_xcom(airflow_cli, tmp_path):
    (tmp_path / "probe.py").write_text(
        textwrap.dedent(
            """
            from __future__ import annotations
            import pendulum
            from airflow.sdk import dag, task

            @dag(schedule=None, start_date=pendulum.datetime(2020, 1, 1), catchup=False)  # past on any test clock
            def harness_probe():
                @task
                def ok():
                    return {"answer": 42}

                @task
                def boom():
                    raise ValueError("expected failure")

                ok()
                boom()

            harness_probe()
            """
        )
    )
    result = airflow_cli.dags_test("harness_probe", dags_folder=tmp_path)
    assert result.run_id is not None, result.output
    assert result.returncode != 0, "a failed task must fail `airflow dags test`"
    assert result.task_states() == {("ok", -1): "success", ("boom", -1): "failed"}
    assert result.xcom("ok") == {"answer": 42}
    assert "expected failure" in result.output
