"""The one home of the settings and the storage connection: both connection forms, the names in
the messages, and the publisher reading the same settings as the app (against Azurite)."""

from __future__ import annotations

import pytest

from conversion import publish as publisher
from functions.settings import (
    DEFAULT_CONTAINER,
    MissingSetting,
    StorageConnection,
    models_container,
    settings,
    signing_key,
    storage_connection,
)
from functions.signing import is_valid
from functions.storage.clients import blob_service_client
from tests.bad_models import good_model_bytes


@pytest.fixture(autouse=True)
def fresh_settings():
    settings.cache_clear()  # read once per process: each test sets its own environment
    yield
    settings.cache_clear()


def test_a_connection_string_wins_over_the_identity_form(monkeypatch):
    monkeypatch.setenv("SOME_STORAGE", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SOME_STORAGE__blobServiceUri", "https://account.blob.core.windows.net")

    assert storage_connection("SOME_STORAGE") == StorageConnection(
        connection_string="UseDevelopmentStorage=true"
    )


def test_the_identity_form_carries_the_account_and_the_client_id(monkeypatch):
    monkeypatch.delenv("SOME_STORAGE", raising=False)
    monkeypatch.setenv("SOME_STORAGE__blobServiceUri", "https://account.blob.core.windows.net")
    monkeypatch.setenv("SOME_STORAGE__clientId", "11111111-2222-3333-4444-555555555555")

    connection = storage_connection("SOME_STORAGE")

    assert connection.connection_string is None
    assert connection.blob_service_uri == "https://account.blob.core.windows.net"
    assert connection.managed_identity_client_id == "11111111-2222-3333-4444-555555555555"
    # A client for it is built without contacting anything (credentials are fetched lazily).
    assert blob_service_client(connection).url.startswith("https://account.blob.core.windows.net")


def test_a_missing_connection_names_the_setting_asked_for(monkeypatch):
    monkeypatch.delenv("OTHER_STORAGE", raising=False)
    monkeypatch.delenv("OTHER_STORAGE__blobServiceUri", raising=False)

    with pytest.raises(MissingSetting, match=r"OTHER_STORAGE is not set.*OTHER_STORAGE__blob"):
        storage_connection("OTHER_STORAGE")


def test_the_container_and_signing_key_defaults(monkeypatch):
    monkeypatch.setenv("MODELS_STORAGE", "UseDevelopmentStorage=true")
    monkeypatch.delenv("MODELS_CONTAINER", raising=False)
    monkeypatch.delenv("MODEL_SIGNING_KEY", raising=False)

    assert models_container() == DEFAULT_CONTAINER == settings().container == "models"
    assert signing_key() is None
    assert settings().signing_key is None

    monkeypatch.setenv("MODELS_CONTAINER", "elsewhere")
    monkeypatch.setenv("MODEL_SIGNING_KEY", "a secret")
    settings.cache_clear()
    assert settings().container == "elsewhere"
    assert settings().signing_key == b"a secret"


def test_the_publisher_uses_the_apps_settings_when_no_flag_is_given(
    azurite, container, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("MODELS_STORAGE", azurite)
    monkeypatch.setenv("MODELS_CONTAINER", container.container_name)
    monkeypatch.setenv("MODEL_SIGNING_KEY", "a secret")
    model = tmp_path / "model.onnx"
    model.write_bytes(good_model_bytes("v7"))

    assert publisher.main([str(model)]) == 0, capsys.readouterr().err

    metadata = container.get_blob_client("incoming/v7.onnx").get_blob_properties().metadata
    assert is_valid(metadata["signature"], metadata["sha256"], b"a secret")


def test_the_publisher_without_any_connection_names_the_flags_and_the_setting(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.delenv("MODELS_STORAGE", raising=False)
    monkeypatch.delenv("MODELS_STORAGE__blobServiceUri", raising=False)
    model = tmp_path / "model.onnx"
    model.write_bytes(good_model_bytes("v7"))

    assert publisher.main([str(model)]) == 1

    error = capsys.readouterr().err
    assert "give --connection-string or --account-url" in error
    assert "MODELS_STORAGE is not set" in error


def test_the_feedback_limits_default_and_are_checked(monkeypatch):
    monkeypatch.setenv("MODELS_STORAGE", "UseDevelopmentStorage=true")
    for name in (
        "FEEDBACK_PER_MINUTE",
        "FEEDBACK_PER_INSTANCE_PER_MINUTE",
        "FEEDBACK_PER_INSTANCE_PER_DAY",
    ):
        monkeypatch.delenv(name, raising=False)
    read = settings()
    assert (
        read.feedback_per_minute,
        read.feedback_per_instance_per_minute,
        read.feedback_per_instance_per_day,
    ) == (10.0, 600.0, 20_000.0)

    monkeypatch.setenv("FEEDBACK_PER_INSTANCE_PER_MINUTE", "120")
    monkeypatch.setenv("FEEDBACK_PER_INSTANCE_PER_DAY", "5000")
    settings.cache_clear()
    assert settings().feedback_per_instance_per_minute == 120.0
    assert settings().feedback_per_instance_per_day == 5000.0

    for name, bad in (
        ("FEEDBACK_PER_INSTANCE_PER_MINUTE", "0"),
        ("FEEDBACK_PER_INSTANCE_PER_MINUTE", "nan"),
        ("FEEDBACK_PER_INSTANCE_PER_MINUTE", "many"),
        ("FEEDBACK_PER_INSTANCE_PER_DAY", "0.5"),
        ("FEEDBACK_PER_INSTANCE_PER_DAY", "inf"),
    ):
        monkeypatch.setenv(name, bad)
        settings.cache_clear()
        with pytest.raises(MissingSetting, match=name):
            settings()
        monkeypatch.setenv(name, "100")
