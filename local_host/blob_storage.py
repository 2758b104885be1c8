"""Blob storage as a binding's ``connection`` setting names it, and blobs as functions get them."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.functions.blob import InputStream
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobServiceClient

from local_host.event_grid import BlobLocation


def check_connection(connection: str, environ: Mapping[str, str] = os.environ) -> None:
    """Refuse a connection whose settings are missing, naming the settings to add."""
    if not (environ.get(connection) or _service_uri(connection, environ)):
        raise ValueError(
            f"app setting {connection} (a connection string, e.g. UseDevelopmentStorage=true) "
            f"or {connection}__blobServiceUri (identity-based) is not set"
        )


@asynccontextmanager
async def blob_service(
    connection: str, environ: Mapping[str, str] = os.environ
) -> AsyncIterator[BlobServiceClient]:
    """A client for the storage account of ``connection``, in either form the host accepts.

    ``<connection>`` holds a connection string (``UseDevelopmentStorage=true`` is Azurite);
    otherwise ``<connection>__blobServiceUri`` names the account and a Microsoft Entra
    identity signs in: the managed identity ``<connection>__clientId`` when
    ``<connection>__credential`` is ``managedidentity``, else ``DefaultAzureCredential``.
    """
    check_connection(connection, environ)
    credential: AsyncTokenCredential | None = None
    if connection_string := environ.get(connection):
        client = BlobServiceClient.from_connection_string(connection_string)
    else:
        client_id = environ.get(f"{connection}__clientId") or None
        if environ.get(f"{connection}__credential", "").lower() == "managedidentity":
            credential = ManagedIdentityCredential(client_id=client_id)
        else:
            credential = DefaultAzureCredential(managed_identity_client_id=client_id)
        client = BlobServiceClient(_service_uri(connection, environ), credential=credential)
    try:
        yield client
    finally:
        await client.close()
        if credential is not None:
            await credential.close()


def _service_uri(connection: str, environ: Mapping[str, str]) -> str | None:
    # serviceUri is the older spelling the host still accepts.
    return environ.get(f"{connection}__blobServiceUri") or environ.get(f"{connection}__serviceUri")


async def read_input_stream(
    service: BlobServiceClient, location: BlobLocation
) -> InputStream | None:
    """The blob as the Python worker hands it to a blob trigger, or None if it is gone.

    ``azure.functions.blob.InputStream`` is the worker's concrete class; ``func.InputStream``
    is only its abstract base.
    """
    blob = service.get_blob_client(location.container, location.name)
    try:
        downloader = await blob.download_blob()
        data = await downloader.readall()
    except ResourceNotFoundError:
        return None
    properties = downloader.properties
    return InputStream(
        data=data,
        name=location.path,
        uri=blob.url,
        length=len(data),
        blob_properties=_host_blob_properties(properties),
        metadata=dict(properties.metadata or {}),
    )


def _host_blob_properties(properties: BlobProperties) -> dict[str, Any]:
    """The properties under the names the host's trigger metadata uses."""
    content = properties.content_settings
    return {
        "BlobType": getattr(properties.blob_type, "value", properties.blob_type),
        "ContentLength": properties.size,
        "ContentType": content.content_type,
        "ContentMD5": _base64(content.content_md5),
        "ETag": properties.etag,
        "LastModified": properties.last_modified.isoformat(),
        "CreatedOn": properties.creation_time.isoformat() if properties.creation_time else None,
    }


def _base64(digest: bytes | bytearray | None) -> str | None:
    # .NET serialises byte arrays as base64, so the host's ContentMD5 is base64 too.
    return base64.b64encode(bytes(digest)).decode() if digest else None
