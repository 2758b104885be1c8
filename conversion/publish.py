"""Publishing a model version: upload it to the drop zone (incoming/<version>.onnx) with its
sha256, and a signature when a key is given, as blob metadata. The function app gates it and,
if it passes, promotes it.

    python -m conversion.publish model.onnx --connection-string UseDevelopmentStorage=true
    python -m conversion.publish model.onnx --account-url https://<account>.blob.core.windows.net
    python -m conversion.publish --rollback --connection-string ...   # the previous version again
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import onnx
from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import BlobServiceClient, ContainerClient
from google.protobuf.message import DecodeError

from functions.signing import signature
from functions.storage.registry import InvalidName, checked_version

SIGNING_KEY_ENV = "MODEL_SIGNING_KEY"


class PublishError(Exception):
    """Nothing was published; the message says why."""


def container(connection_string: str | None, account_url: str | None, name: str) -> ContainerClient:
    if connection_string:
        service = BlobServiceClient.from_connection_string(connection_string)
    elif account_url:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - Azure only

        service = BlobServiceClient(account_url, credential=DefaultAzureCredential())
    else:
        raise PublishError("give --connection-string or --account-url")
    return service.get_container_client(name)


def version_of(content: bytes) -> str:
    try:
        model = onnx.load_from_string(content)
    except DecodeError as error:
        raise PublishError(f"not an ONNX model: {error}") from error
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    if "version" not in metadata:
        raise PublishError("the model's metadata_props carry no version; pass --version")
    return valid_version(metadata["version"])


def publish(
    target: ContainerClient, content: bytes, version: str, signing_key: bytes | None = None
) -> str:
    """Uploads incoming/<version>.onnx; returns the blob's path."""
    path = f"incoming/{valid_version(version)}.onnx"  # checked before any storage call
    sha256 = hashlib.sha256(content).hexdigest()
    metadata = {"sha256": sha256}
    if signing_key:
        metadata["signature"] = signature(sha256, signing_key)
    try:
        target.upload_blob(path, content, overwrite=True, metadata=metadata)
    except HttpResponseError as error:
        # The promoter leases the file while it decides on it; an upload then gets 412 (or 409).
        if error.status_code in (409, 412):
            raise PublishError(
                f"{path} is being decided right now (its lease is held); try again in a minute, "
                "after GET /api/models shows the decision"
            ) from error
        raise
    return path


def valid_version(version: str) -> str:
    """A version from the command line, the model's metadata or current.json becomes part of a
    blob path only if it is a valid version (so "../versions/v1" never does)."""
    try:
        return checked_version(version)
    except InvalidName as error:
        raise PublishError(str(error)) from None


def rollback(target: ContainerClient, signing_key: bytes | None = None) -> str:
    """Drops the previous version (from current.json) again: accepted versions are promoted
    again without the quality gates."""
    try:
        pointer = json.loads(target.download_blob("current.json").readall())
    except Exception as error:
        raise PublishError(f"cannot read current.json: {error}") from error
    previous = pointer.get("previous_version")
    if previous is not None:
        valid_version(previous)
    if not previous or target.get_blob_client(f"versions/{previous}.onnx").exists() is False:
        raise PublishError(
            f"no stored previous version to roll back to (current {pointer.get('version')}, "
            f"previous {previous}); drop versions/<version>.onnx into incoming/ by hand"
        )
    content = target.download_blob(f"versions/{previous}.onnx").readall()
    return publish(target, content, previous, signing_key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", nargs="?", help="the .onnx file to publish")
    parser.add_argument("--version", help="default: the version in the model's metadata")
    parser.add_argument("--rollback", action="store_true", help="publish the previous version")
    parser.add_argument("--connection-string", default=os.environ.get("MODELS_STORAGE"))
    parser.add_argument("--account-url", help="https://<account>.blob.core.windows.net")
    parser.add_argument("--container", default=os.environ.get("MODELS_CONTAINER", "models"))
    args = parser.parse_args(argv)
    key = (os.environ.get(SIGNING_KEY_ENV) or "").encode() or None
    try:
        target = container(args.connection_string, args.account_url, args.container)
        if args.rollback:
            path = rollback(target, key)
        elif args.model:
            content = Path(args.model).read_bytes()
            path = publish(target, content, args.version or version_of(content), key)
        else:
            raise PublishError("give a model file, or --rollback")
    except (PublishError, OSError) as error:
        print(f"not published: {error}", file=sys.stderr)
        return 1
    except AzureError as error:
        print(f"not published: storage answered {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"published {path}{' (signed)' if key else ''}; watch GET /api/models for the decision")
    return 0


if __name__ == "__main__":
    sys.exit(main())
