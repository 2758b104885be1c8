"""The blob container client, from a connection string or a managed identity."""

from __future__ import annotations

from azure.storage.blob import BlobServiceClient, ContainerClient, LinearRetry

from functions.settings import Settings


def bounded_retries(attempts: int = 2) -> dict[str, object]:
    """Client options that fail within seconds: the SDK's default waits 15 s before its first
    retry, longer than a request may wait or a lease lasts."""
    return {
        "retry_policy": LinearRetry(backoff=0.5, random_jitter_range=0, retry_total=attempts),
        "connection_timeout": 5,
        "read_timeout": 20,
    }


def container_client(settings: Settings, **options) -> ContainerClient:
    """`options` go to the SDK client (see `bounded_retries`)."""
    connection = settings.storage
    if connection.connection_string:
        service = BlobServiceClient.from_connection_string(connection.connection_string, **options)
    else:
        # Imported here: azure-identity is only needed where a managed identity is used.
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential  # noqa: PLC0415

        credential = (
            ManagedIdentityCredential(client_id=connection.managed_identity_client_id)
            if connection.managed_identity_client_id
            else DefaultAzureCredential()
        )
        service = BlobServiceClient(connection.blob_service_uri, credential=credential, **options)
    return service.get_container_client(settings.container)
