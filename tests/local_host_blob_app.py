"""A function app with Event Grid blob triggers, for the local host's tests.

Settings (set by the tests): ``TEST_STORAGE`` (connection string), ``TEST_CONTAINER``, and
``TEST_RECORD_FILE``, where each call appends one JSON line saying what the function got, so
that tests can read it whether the host runs in-process or as another process.
"""

import json
import os

import azure.functions as func

app = func.FunctionApp()


@app.blob_trigger(
    arg_name="blob",
    path="%TEST_CONTAINER%/incoming/{name}",
    connection="TEST_STORAGE",
    source=func.BlobSource.EVENT_GRID,
)
def record_blob(blob: func.InputStream) -> None:
    data = blob.read()
    record = {
        "name": blob.name,
        "length": blob.length,
        "head": data[:16].decode("latin-1"),
        "uri": blob.uri,
        "metadata": blob.metadata,
        "etag": blob.blob_properties["ETag"],
    }
    with open(os.environ["TEST_RECORD_FILE"], "a", encoding="utf-8") as record_file:
        record_file.write(json.dumps(record) + "\n")


@app.blob_trigger(
    arg_name="blob",
    path="%TEST_CONTAINER%/failing/{name}",
    connection="TEST_STORAGE",
    source=func.BlobSource.EVENT_GRID,
)
async def reject_blob(blob: func.InputStream) -> None:
    raise RuntimeError(f"cannot take {blob.name}")
