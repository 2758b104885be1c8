"""Publishing a model version: upload it to the drop zone (incoming/<version>.onnx) with its
sha256, and a signature when a key is given, as blob metadata. The function app gates it and,
if it passes, promotes it.

    python -m conversion.publish model.onnx --connection-string UseDevelopmentStorage=true
    python -m conversion.publish model.onnx --account-url https://<account>.blob.core.windows.net
    python -m conversion.publish --rollback --connection-string ...   # the previous version again
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx
from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient
from google.protobuf.message import DecodeError

from functions.model_contract import VERSION_KEY
from functions.serving.provider import BUNDLED_MODEL
from functions.settings import (
    STORAGE_SETTING,
    MissingSetting,
    command_line_connection,
    models_container,
    signing_key,
)
from functions.signing import drop_metadata
from functions.storage.clients import blob_service_client
from functions.storage.errors import IncomingBeingDecided, InvalidName
from functions.storage.model_registry import ModelRegistry
from functions.storage.names import checked_version


class PublishError(Exception):
    """Nothing was published; the message says why."""


def container(connection_string: str | None, account_url: str | None, name: str) -> ContainerClient:
    """The models container from the command line's flags; with neither flag, from the app's own
    storage setting (a connection string, or the identity-based form)."""
    try:
        connection = command_line_connection(connection_string, account_url)
    except MissingSetting as error:
        raise PublishError(f"give --connection-string or --account-url ({error})") from None
    return blob_service_client(connection).get_container_client(name)


def version_of(content: bytes) -> str:
    try:
        model = onnx.load_from_string(content)
    except DecodeError as error:
        raise PublishError(f"not an ONNX model: {error}") from error
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    if VERSION_KEY not in metadata:
        raise PublishError(
            f"the model's metadata_props carry no {VERSION_KEY}; the promotion gate would refuse it"
        )
    return valid_version(metadata[VERSION_KEY])


def version_to_publish(content: bytes, requested: str | None) -> str:
    """The model's own version. `--version` may only repeat it: the gate refuses a file whose
    name and metadata disagree, so such a file is refused here, before any upload."""
    own = version_of(content)
    if requested is not None and valid_version(requested) != own:
        raise PublishError(
            f"--version {requested} differs from the version in the model's metadata ({own}); "
            "the promotion gate would refuse it"
        )
    return own


def publish(
    target: ContainerClient, content: bytes, version: str, signing_key: bytes | None = None
) -> str:
    """Uploads incoming/<version>.onnx; returns the blob's path."""
    checked = valid_version(version)  # before any storage call
    try:
        return ModelRegistry(target).drop_incoming(
            checked, content, drop_metadata(content, signing_key)
        )
    except IncomingBeingDecided as error:
        # The promoter leases the file while it decides on it.
        raise PublishError(
            f"{error} (its lease is held); try again in a minute, "
            "after GET /api/models shows the decision"
        ) from error


def valid_version(version: str) -> str:
    """A version from the command line, the model's metadata or current.json becomes part of a
    blob path only if it is a valid version (so "../versions/v1" never does)."""
    try:
        return checked_version(version)
    except InvalidName as error:
        raise PublishError(str(error)) from None


def rollback(target: ContainerClient, signing_key: bytes | None = None) -> str:
    """Drops the previous version (from current.json) again: accepted versions are promoted
    again without the quality gates. When the previous version is the bundled model (the app's
    own, which is not in storage), this checkout's bundled file is dropped: the promoter takes
    its own bundled model back the same way (its trial still runs)."""
    registry = ModelRegistry(target)
    try:
        pointer = registry.read_pointer()
    except Exception as error:
        raise PublishError(f"cannot read current.json: {error}") from error
    if pointer is None:
        raise PublishError("cannot read current.json: there is none (nothing was promoted)")
    if not pointer.usable:
        raise PublishError(
            f"{pointer.damage}: it names no previous version; publish the version to serve "
            "(its promotion replaces current.json)"
        )
    current, previous = pointer.document["version"], pointer.document.get("previous_version")
    if previous is not None:
        valid_version(previous)
    undone = pointer.document.get("rolled_back_from") or {}
    if previous and isinstance(undone, dict) and undone.get("version") == previous:
        raise PublishError(
            f"{current} serves because serving rolled {previous} back ({undone.get('reason')}); "
            f"to serve {previous} again anyway, drop versions/{previous}.onnx into incoming/"
        )
    if previous and registry.stored_version(previous) is not None:
        return publish(target, registry.read_version(previous), previous, signing_key)
    bundled_version, bundled = bundled_model()
    if previous and previous == bundled_version:
        return publish(target, bundled, bundled_version, signing_key)
    raise PublishError(
        f"no stored previous version to roll back to (current {current}, previous {previous}; "
        f"the bundled model here is {bundled_version}); drop versions/<version>.onnx into "
        "incoming/ by hand"
    )


def bundled_model() -> tuple[str, bytes]:
    """The version and bytes of the model this checkout bundles with the app."""
    content = BUNDLED_MODEL.read_bytes()
    return version_of(content), content


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", nargs="?", help="the .onnx file to publish")
    parser.add_argument(
        "--version", help="the version in the model's metadata (checked: it may only repeat it)"
    )
    parser.add_argument("--rollback", action="store_true", help="publish the previous version")
    parser.add_argument("--connection-string", help=f"default: the {STORAGE_SETTING} setting")
    parser.add_argument("--account-url", help="https://<account>.blob.core.windows.net")
    parser.add_argument("--container", default=models_container())
    args = parser.parse_args(argv)
    key = signing_key()
    try:
        target = container(args.connection_string, args.account_url, args.container)
        if args.rollback:
            path = rollback(target, key)
        elif args.model:
            content = Path(args.model).read_bytes()
            path = publish(target, content, version_to_publish(content, args.version), key)
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
