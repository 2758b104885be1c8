"""The base of every error the app raises on purpose. Each subsystem has its own family on it:
requests (`functions/api/request_errors.py`), serving (`functions/serving/errors.py`), the model
contract (`functions/model_contract.py`), storage (`functions/storage/errors.py`). Which HTTP
status and headers an error becomes is decided in `functions/api/problems.py` alone."""

from __future__ import annotations


class AppError(Exception):
    """The base of every subsystem's error family: `detail` says what went wrong, in words a
    client may read unless `functions/api/problems.py` gives the answer a fixed detail."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
