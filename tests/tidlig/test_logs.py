"""Log lines: Tidlig's own and Prefect's run logs never hold a CPR number, however it is written."""

from __future__ import annotations

import io
import logging

import pytest

from tidlig.logs import PACKAGES, configure, redact_prefect_logs


def test_tidlig_log_lines_blank_out_cpr_numbers_in_messages_and_errors():
    out = io.StringIO()
    configure(stream=out)
    try:
        log = logging.getLogger("validate.contract")
        log.warning("row 7 holds %s", "040313 1001")
        try:
            raise ValueError("cannot parse '040313\u20131001'")
        except ValueError:
            log.exception("failed")
    finally:
        for package in PACKAGES:
            logging.getLogger(package).handlers.clear()
            logging.getLogger(package).propagate = True
    assert "040313" not in out.getvalue() and out.getvalue().count("[CPR fjernet]") == 2


@pytest.mark.prefect
def test_prefect_run_logs_of_a_failed_task_blank_out_cpr_numbers(prefect_api):
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    @task(persist_result=False)
    def choke() -> None:
        raise ValueError("could not parse '040313 1001' as a date")

    @flow(persist_result=False)
    def failing() -> None:
        redact_prefect_logs()
        choke()

    from prefect.logging.handlers import APILogWorker

    state = failing(return_state=True)
    assert state.is_failed()
    APILogWorker.drain_all(timeout=10)  # run logs reach the API in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    text = "\n".join(entry.message for entry in logs)
    assert "could not parse" in text and "[CPR fjernet]" in text
    assert "040313" not in text
