"""Creates the Event Grid subscription that feeds `promote_model` (the api postdeploy hook).

The subscription's webhook carries the Event Grid extension's system key (`eventgrid_extension`),
which the Functions host creates only once code with an Event Grid trigger runs, and Event Grid
validates the webhook when the subscription is created. So this runs after `azd deploy` of the
api: it wakes the app, waits for the key, then deploys infra/modules/event-subscription.bicep
(which reads the key itself with listKeys: the key never passes through this script) with the
Azure CLI. The same way as the Azure Functions Flex Consumption + Event Grid samples, whose
postdeploy hook creates the subscription, with the subscription kept in Bicep.

Needs `az` signed in to the same subscription as azd (locally `az login`; in GitHub Actions the
azure/login step). Without the Azure CLI: `azd env set EVENT_SUBSCRIPTION_ENABLED true` and
`azd provision` after the first deploy do the same from infra/main.bicep.

Reads from azd's environment: AZURE_RESOURCE_GROUP, AZURE_FUNCTION_APP_NAME,
EVENT_GRID_SYSTEM_TOPIC_NAME, MODELS_CONTAINER, API_BASE_URL and AZURE_SUBSCRIPTION_ID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "modules" / "event-subscription.bicep"
REQUIRED = ("AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME", "EVENT_GRID_SYSTEM_TOPIC_NAME")
KEY_WAIT_SECONDS = 600
POLL_SECONDS = 15
DEPLOY_TRIES = 3


class HookError(Exception):
    """The subscription was not created; the message says why and what to do."""


def az(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("az")
    if executable is None:
        raise HookError(
            "the Azure CLI (az) is not installed. Install it and run this hook again "
            "(python infra/hooks/event_subscription.py), or `azd env set "
            "EVENT_SUBSCRIPTION_ENABLED true` and `azd provision`"
        )
    subscription = os.environ.get("AZURE_SUBSCRIPTION_ID")
    extra = ("--subscription", subscription) if subscription else ()
    # Fixed arguments from azd's environment, no shell.
    return subprocess.run(  # noqa: S603
        [executable, *args, *extra], capture_output=True, text=True, check=False
    )


def wake(api_base_url: str | None) -> None:
    """One request so the (scale-to-zero) host starts and creates its system keys."""
    if not api_base_url or not api_base_url.startswith("https://"):
        return
    try:
        # The deployment's own https URL (checked above).
        with urllib.request.urlopen(f"{api_base_url.rstrip('/')}/health", timeout=120):  # noqa: S310
            pass
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        print(f"event_subscription: health check: {error} (carrying on)")


def wait_for_key(group: str, app: str) -> None:
    """Until the eventgrid_extension system key exists (its value is not printed)."""
    deadline = time.monotonic() + KEY_WAIT_SECONDS
    while True:
        result = az(
            "functionapp", "keys", "list", "--resource-group", group, "--name", app,
            "--query", "systemKeys.eventgrid_extension", "--output", "tsv",
        )  # fmt: skip
        if result.returncode == 0 and result.stdout.strip():
            return
        if time.monotonic() > deadline:
            detail = result.stderr.strip().splitlines()[-1:] or ["no eventgrid_extension key yet"]
            raise HookError(
                f"{app} has no eventgrid_extension system key after {KEY_WAIT_SECONDS} s "
                f"({detail[0]}). Is the code deployed and does `promote_model` load? "
                "Run this hook again once it does."
            )
        print("event_subscription: waiting for the Event Grid extension's system key ...")
        time.sleep(POLL_SECONDS)


def deploy(group: str, app: str, topic: str, container: str) -> None:
    for attempt in range(1, DEPLOY_TRIES + 1):
        result = az(
            "deployment", "group", "create", "--resource-group", group,
            "--name", "event-subscription", "--template-file", str(TEMPLATE),
            "--parameters", f"systemTopicName={topic}", f"functionAppName={app}",
            f"modelsContainerName={container}", "--output", "none",
        )  # fmt: skip
        if result.returncode == 0:
            return
        # Event Grid's validation handshake can time out while a cold instance starts.
        print(f"event_subscription: try {attempt} failed:\n{result.stderr.strip()}")
        if attempt < DEPLOY_TRIES:
            time.sleep(30)
    raise HookError("the event subscription deployment failed (see above)")


def main() -> int:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        print(
            f"event_subscription: {', '.join(missing)} not set; run `azd provision` first",
            file=sys.stderr,
        )
        return 1
    group = os.environ["AZURE_RESOURCE_GROUP"]
    app = os.environ["AZURE_FUNCTION_APP_NAME"]
    topic = os.environ["EVENT_GRID_SYSTEM_TOPIC_NAME"]
    container = os.environ.get("MODELS_CONTAINER") or "models"
    try:
        wake(os.environ.get("API_BASE_URL"))
        wait_for_key(group, app)
        deploy(group, app, topic, container)
    except HookError as error:
        print(f"event_subscription: {error}", file=sys.stderr)
        return 1
    print(
        f"event_subscription: {topic} -> {app} (promote_model, Event Grid trigger), "
        f"BlobCreated under {container}/incoming/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
