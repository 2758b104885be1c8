"""schemathesis against the served OpenAPI document: requests generated for every operation
(valid and invalid) get no 500, and every response conforms to the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_api_conforms_to_its_openapi_document(base_url, tmp_path):
    # Its CLI rather than its pytest plugin, which does not run under pytest 9 yet.
    schemathesis = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{base_url}/openapi.json",
            "--checks",
            "all",
            # A picture body is any non-empty string to the schema, but only a real PNG or JPEG
            # is accepted: "schema-valid data must be accepted" cannot hold for those bodies.
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "60",
            "--seed",
            "20261127",
            "--report",
            "ndjson",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert "No issues found" in summary
    # Every operation was exercised (schemathesis leaves out the document's own path).
    events = "".join(path.read_text() for path in tmp_path.rglob("*.ndjson"))
    for operation in ("POST /predict", "GET /health", "GET /models"):
        assert f'"label":"{operation}"' in events, operation
