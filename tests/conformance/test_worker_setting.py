"""Where no worker copy is configured, the suite is skipped with a message naming the setting."""

from __future__ import annotations

import pytest

from tests.conformance.worker_host import WORKER_DIR_SETTING, worker_copy


def test_a_missing_worker_copy_skips_naming_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv(WORKER_DIR_SETTING, str(tmp_path / "missing"))

    with pytest.raises(pytest.skip.Exception, match=WORKER_DIR_SETTING):
        worker_copy()


def test_a_copy_without_its_protocol_skips_naming_the_setting(monkeypatch, tmp_path):
    (tmp_path / "build-worker").write_text("#!/bin/sh\n")
    monkeypatch.setenv(WORKER_DIR_SETTING, str(tmp_path))

    with pytest.raises(
        pytest.skip.Exception, match=f"lacks its gRPC protocol.*{WORKER_DIR_SETTING}"
    ):
        worker_copy()


def test_the_configured_copy_is_used(monkeypatch, tmp_path):
    (tmp_path / "build-worker").write_text("#!/bin/sh\n")
    proto = tmp_path / "azure_functions_worker/protos/_src/src/proto/FunctionRpc.proto"
    proto.parent.mkdir(parents=True)
    proto.write_text('syntax = "proto3";\n')
    monkeypatch.setenv(WORKER_DIR_SETTING, str(tmp_path))

    assert worker_copy() == tmp_path
