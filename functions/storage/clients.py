"""The blob container client, from a connection string or a managed identity, and the client
options (timeouts, retries) that every caller picks from here."""

from __future__ import annotations

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.storage.blob import BlobServiceClient, ContainerClient, LinearRetry

from functions.settings import Settings, StorageConnection

# Serving (following current.json, the registry listing) runs beside the predictions: a storage
# call that hangs must end in seconds and be counted as storage being unreachable. The follower
# and the listing try again on their own schedule, so a retry here would only double the wait.
SERVING_CONNECTION_TIMEOUT_SECONDS = 3
SERVING_READ_TIMEOUT_SECONDS = 5


def bounded_retries(attempts: int = 2) -> dict[str, object]:
    """Client options that fail within seconds: the SDK's default waits 15 s before its first
    retry, longer than a request may wait or a lease lasts."""
    return {
        "retry_policy": LinearRetry(backoff=0.5, random_jitter_range=0, retry_total=attempts),
        "connection_timeout": 5,
        "read_timeout": 20,
    }


def serving_options() -> dict[str, object]:
    """Client options for the serving side: short timeouts and no retry. The read timeout
    bounds each socket read, not a whole download, so a large model still downloads."""
    return {
        "retry_policy": LinearRetry(backoff=0, random_jitter_range=0, retry_total=0),
        "connection_timeout": SERVING_CONNECTION_TIMEOUT_SECONDS,
        "read_timeout": SERVING_READ_TIMEOUT_SECONDS,
    }


def blob_service_client(connection: StorageConnection, **options) -> BlobServiceClient:
    """`options` go to the SDK client (see `bounded_retries` and `serving_options`)."""
    if connection.connection_string:
        return BlobServiceClient.from_connection_string(connection.connection_string, **options)
    # Imported here: azure-identity is only needed where a managed identity is used.
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential  # noqa: PLC0415

    credential = (
        ManagedIdentityCredential(client_id=connection.managed_identity_client_id)
        if connection.managed_identity_client_id
        else DefaultAzureCredential()
    )
    return BlobServiceClient(connection.blob_service_uri, credential=credential, **options)


def container_client(settings: Settings, name: str | None = None, **options) -> ContainerClient:
    """The container `name` (default: the models container) on the storage connection;
    `options` go to the SDK client (see `bounded_retries` and `serving_options`)."""
    service = blob_service_client(settings.storage, **options)
    return service.get_container_client(name or settings.container)


def is_unreachable(error: BaseException) -> bool:
    """A transport failure: no answer from storage (refused, reset, or a connection or read
    timeout), as opposed to an answer that says no (an HTTP error status)."""
    return isinstance(
        error, ServiceRequestError | ServiceResponseError | ConnectionError | TimeoutError
    )
