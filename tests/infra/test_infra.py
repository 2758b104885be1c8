"""The deployment in infra/ keeps the contracts: every setting the code reads is set in Azure (in
its identity-based form where it is a connection), the Event Grid subscription feeds the Event
Grid trigger that function_app.py declares, the Python version is one and the same everywhere it
is named, and the site is staged with the deployed API's URL and origin
(infra/hooks/stage_site.py). Static checks only: nothing here reaches Azure."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from function_app import app
from functions.settings import STORAGE_SETTING
from functions.storage.registry import INCOMING
from tests.stack import REPO_ROOT

INFRA = REPO_ROOT / "infra"
FUNCTION_APP_BICEP = INFRA / "modules" / "function-app.bicep"
EVENT_SUBSCRIPTION_BICEP = INFRA / "modules" / "event-subscription.bicep"
# Settings of local.settings.example.json that Azure does without or that infra sets differently:
# the worker runtime is functionAppConfig.runtime on Flex Consumption (the platform refuses it as
# an app setting), worker indexing is on by default, and the host storage is identity-based.
LOCAL_ONLY = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsFeatureFlags", "AzureWebJobsStorage"}
# What the app's identity-based blob connection needs (no trigger binds it: no queue endpoint).
IDENTITY_SUFFIXES = ("__blobServiceUri", "__credential", "__clientId")
# The interpreter of the function app (Flex Consumption's functionAppConfig.runtime.version),
# which the workflows and the Azure ML environment also run.
PYTHON_VERSION = "3.13"


def read_names(source: Path) -> set[str]:
    """Every setting name functions/settings.py reads: the first argument of os.environ.get(...),
    _number(...) and storage_connection(...), with module-level string constants and f-strings
    resolved. A name passed in as a parameter (inside _number or storage_connection) is found at
    their callers."""
    tree = ast.parse(source.read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }
    parameters = {
        argument.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        for argument in node.args.args + node.args.kwonlyargs
    }

    def resolve(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        if isinstance(node, ast.Name) and node.id in parameters:
            return None
        if isinstance(node, ast.JoinedStr):
            parts = [
                resolve(part.value if isinstance(part, ast.FormattedValue) else part)
                for part in node.values
            ]
            return None if None in parts else "".join(parts)  # a parameter: see its callers
        raise AssertionError(f"cannot resolve the setting name {ast.unparse(node)}")

    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        if ast.unparse(node.func) in {
            "os.environ.get",
            "os.getenv",
            "_number",
            "storage_connection",
        }:
            name = resolve(node.args[0])
            if name is not None:
                assert "?" not in name, name
                names.add(name)
    return names


def infra_app_settings() -> dict[str, str]:
    """name -> value expression of every app setting of the function app."""
    pairs = re.findall(
        r"\{\s*name:\s*'([^']+)'\s*,\s*value:\s*([^}]+?)\s*\}", FUNCTION_APP_BICEP.read_text()
    )
    return dict(pairs)


def trigger_types() -> dict[str, str]:
    """function name -> the type of its trigger binding, for every function of the app."""
    return {
        function.get_function_name(): binding.get_dict_repr()["type"]
        for function in app.get_functions()
        for binding in function.get_bindings()
        if binding.get_dict_repr()["type"].endswith("Trigger")
    }


def load_hook(name: str):
    spec = importlib.util.spec_from_file_location(name, INFRA / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_the_code_reads_is_set_in_azure():
    read = read_names(REPO_ROOT / "functions" / "settings.py")
    assert {STORAGE_SETTING, "MODELS_CONTAINER", "MODEL_SIGNING_KEY"} <= read  # the parse works
    settings = infra_app_settings()
    for name in sorted(read):
        if name == STORAGE_SETTING or name.startswith(f"{STORAGE_SETTING}__"):
            continue  # the connection: checked in its identity form below
        assert name in settings, f"{name} is read by functions/settings.py but not set in infra/"
    for suffix in IDENTITY_SUFFIXES:
        assert f"{STORAGE_SETTING}{suffix}" in settings
    assert settings[f"{STORAGE_SETTING}__credential"] == "'managedidentity'"
    assert STORAGE_SETTING not in settings  # no connection string: shared keys are disabled


def test_every_example_setting_is_set_in_azure():
    values = json.loads((REPO_ROOT / "local.settings.example.json").read_text())["Values"]
    settings = infra_app_settings()
    for name in sorted(set(values) - LOCAL_ONLY):
        identity_form = all(f"{name}{suffix}" in settings for suffix in IDENTITY_SUFFIXES)
        assert name in settings or identity_form, f"{name} is not set by infra/"


def test_the_host_storage_is_identity_based_and_the_runtime_is_flex():
    settings = infra_app_settings()
    for suffix in ("__accountName", "__credential", "__clientId"):
        assert f"AzureWebJobsStorage{suffix}" in settings
    assert settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert not {"AzureWebJobsStorage", "FUNCTIONS_WORKER_RUNTIME"} & set(settings)
    bicep = FUNCTION_APP_BICEP.read_text()
    assert "name: 'FC1'" in bicep
    runtime = re.search(r"runtime:\s*\{\s*name:\s*'python'\s*version:\s*'([\d.]+)'", bicep)
    assert runtime.group(1) == PYTHON_VERSION
    # From Python 3.13 the app pins the Functions Python runtime itself (runtime version control).
    requirements = (REPO_ROOT / "requirements.txt").read_text()
    assert re.search(r"^azure-functions-runtime==[\d.]+", requirements, re.MULTILINE)
    for module in ("host-storage.bicep", "models-storage.bicep"):
        assert "allowSharedKeyAccess: false" in (INFRA / "modules" / module).read_text()


def test_the_event_subscription_feeds_the_event_grid_trigger():
    """promote_model is an Event Grid trigger and the subscription posts to its webhook with the
    Event Grid extension's system key; the app reads the blob itself, so no trigger binds the
    models storage and its connection is blobs only (no queue endpoint, no queue role)."""
    triggers = trigger_types()
    assert triggers["promote_model"] == "eventGridTrigger"
    assert "blobTrigger" not in triggers.values()
    assert "queueTrigger" not in triggers.values()

    bicep = EVENT_SUBSCRIPTION_BICEP.read_text()
    default_name = re.search(r"param functionName string = '(\w+)'", bicep).group(1)
    assert default_name == "promote_model"
    url = re.search(r"var webhookUrl = '([^']+)'", bicep).group(1)
    assert url == (
        "https://${functionApp.properties.defaultHostName}/runtime/webhooks/eventgrid"
        "?functionName=${functionName}&code=${eventGridExtensionKey}"
    )
    assert re.search(
        r"var eventGridExtensionKey = listKeys\('\$\{functionApp\.id\}/host/default', "
        r"'[\d-]+'\)\.systemKeys\.eventgrid_extension\n",
        bicep,
    )
    assert "blobs_extension" not in bicep
    assert "endpointType: 'WebHook'" in bicep
    assert re.search(r"includedEventTypes:\s*\[\s*'Microsoft\.Storage\.BlobCreated'\s*\]", bicep)
    assert (
        "subjectBeginsWith: '/blobServices/default/containers/${modelsContainerName}/blobs/"
        f"{INCOMING}'" in bicep
    )
    assert re.search(r"retryPolicy:\s*\{\s*maxDeliveryAttempts: \d+", bicep)

    hook = (INFRA / "hooks" / "event_subscription.py").read_text()
    assert '"systemKeys.eventgrid_extension"' in hook
    assert "blobs_extension" not in hook

    settings = infra_app_settings()
    assert not [name for name in settings if name.endswith("__queueServiceUri")]
    main = (INFRA / "main.bicep").read_text()
    roles = re.search(r"module modelsStorageRoles .*?\n}\n", main, re.DOTALL).group(0)
    assert "storageQueueDataContributor" not in roles


def test_one_python_version_everywhere():
    """The function app's runtime, the workflows' interpreter and the Azure ML environment's are
    the same Python (training, conversion and serving share one interpreter)."""
    named = [
        version
        for workflow in sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
        for version in re.findall(r"python-version:\s*\"?([\d.]+)", workflow.read_text())
    ]
    assert set(named) == {PYTHON_VERSION}, named
    conda = yaml.safe_load((REPO_ROOT / "conversion" / "azureml" / "conda.yml").read_text())
    assert f"python={PYTHON_VERSION}" in conda["dependencies"]
    assert f"Python {PYTHON_VERSION}" in FUNCTION_APP_BICEP.read_text().splitlines()[0]


def test_infra_defaults_are_the_contract_defaults():
    """main.bicep's parameter for each setting (named in its @description) and the fallback in
    main.parameters.json default to local.settings.example.json's value."""
    values = json.loads((REPO_ROOT / "local.settings.example.json").read_text())["Values"]
    main = (INFRA / "main.bicep").read_text()
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    found = {}
    for block in re.split(r"\n\s*\n", main):
        described = re.search(r"@description\('([A-Z][A-Z_]+)\b", block)
        declared = re.search(r"^param (\w+) string = '([^']*)'$", block, re.MULTILINE)
        if described and declared:
            setting, (parameter, default) = described.group(1), declared.groups()
            found[setting] = default
            fallback = re.fullmatch(r"\$\{(\w+)=([^}]*)\}", parameters[parameter]["value"])
            assert fallback.groups() == (setting, default), parameter
    assert set(found) == {
        "MODELS_CONTAINER",
        "MODEL_REFRESH_SECONDS",
        "PROMOTION_MIN_ACCURACY",
        "PROMOTION_MAX_REGRESSION",
        "MODEL_SIGNING_KEY",
        "FEEDBACK_CONTAINER",
        "FEEDBACK_PER_MINUTE",
    }
    for setting, default in found.items():
        assert default == values[setting], setting


def test_the_instance_caps_default_in_the_module_to_the_example_settings():
    """FEEDBACK_PER_INSTANCE_PER_MINUTE and _PER_DAY are parameters of the function app's module
    alone (main.bicep leaves them at their defaults): those are local.settings.example.json's."""
    values = json.loads((REPO_ROOT / "local.settings.example.json").read_text())["Values"]
    bicep = FUNCTION_APP_BICEP.read_text()
    settings = infra_app_settings()
    for setting, parameter in (
        ("FEEDBACK_PER_INSTANCE_PER_MINUTE", "feedbackPerInstancePerMinute"),
        ("FEEDBACK_PER_INSTANCE_PER_DAY", "feedbackPerInstancePerDay"),
    ):
        assert settings[setting] == parameter
        default = re.search(rf"^param {parameter} string = '([^']*)'$", bicep, re.MULTILINE)
        assert default.group(1) == values[setting], setting


def test_feedback_lives_beside_the_models_and_is_deleted_after_its_retention():
    """The feedback container is in the models account, where the app's identity may write
    (its account-wide data role), and a lifecycle rule deletes its items after the retention
    that docs/contracts.md section 2a states."""
    storage = (INFRA / "modules" / "models-storage.bicep").read_text()
    main = (INFRA / "main.bicep").read_text()
    assert re.search(r"param feedbackRetentionDays int = 180\b", storage)
    assert re.search(r"param feedbackRetentionDays int = 180\b", main)
    assert "deletes items 180 days after" in (REPO_ROOT / "docs" / "contracts.md").read_text()
    assert "prefixMatch: [\n                '${feedbackContainerName}/items/'" in storage
    assert "daysAfterModificationGreaterThan: feedbackRetentionDays" in storage
    roles = re.search(r"module modelsStorageRoles .*?\n}\n", main, re.DOTALL).group(0)
    assert "principalId: identity.outputs.principalId" in roles
    assert "storageBlobDataOwner" in roles


def test_main_parameters_cover_the_required_parameters():
    main = (INFRA / "main.bicep").read_text()
    required = re.findall(r"^param (\w+) \w+$", main, re.MULTILINE)  # no default
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(required) <= set(given), set(required) - set(given)
    for module in re.findall(r"^module \w+ '([^']+)'", main, re.MULTILINE):
        assert (INFRA / module).is_file(), module


def test_azure_yaml_and_workflows_parse():
    project = yaml.safe_load((REPO_ROOT / "azure.yaml").read_text())
    api, web = project["services"]["api"], project["services"]["web"]
    assert (api["project"], api["language"], api["host"]) == (".", "python", "function")
    assert web["host"] == "staticwebapp"
    assert (REPO_ROOT / "azure.yaml").parent.joinpath(web["project"]).is_dir()
    assert "'azd-service-name': 'api'" in FUNCTION_APP_BICEP.read_text()
    assert "'azd-service-name': 'web'" in (INFRA / "modules" / "static-web-app.bicep").read_text()
    for workflow in (REPO_ROOT / ".github" / "workflows").glob("*.yml"):
        assert yaml.safe_load(workflow.read_text())["jobs"], workflow


def test_the_staged_site_calls_the_deployed_api(tmp_path):
    stage_site = load_hook("stage_site")
    source = REPO_ROOT / "static-web"
    before = {path: path.read_bytes() for path in source.rglob("*") if path.is_file()}
    api = "https://func-abc123.azurewebsites.net/api"
    target = stage_site.stage(source, tmp_path / "site", f"{api}/")

    config_js = (target / "config.js").read_text()
    assert re.search(r'export const apiBase = "([^"]+)";', config_js).group(1) == api
    config = json.loads((target / "staticwebapp.config.json").read_text())
    original = json.loads((source / "staticwebapp.config.json").read_text())
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in config["globalHeaders"]["Content-Security-Policy"].split(";")
    }
    assert policy["connect-src"] == ["'self'", "https://func-abc123.azurewebsites.net"]
    assert policy["script-src"] == ["'self'"]  # nothing else loosened
    del config["globalHeaders"]["Content-Security-Policy"]
    del original["globalHeaders"]["Content-Security-Policy"]
    assert config == original
    assert (target / "index.html").read_bytes() == (source / "index.html").read_bytes()
    assert not (target / "package.json").exists()
    assert before == {path: path.read_bytes() for path in source.rglob("*") if path.is_file()}


@pytest.mark.parametrize(
    "url", ["http://func.azurewebsites.net/api", "/api", "https://func.azurewebsites.net/api?x=1"]
)
def test_the_site_is_never_staged_for_a_non_https_api(tmp_path, url):
    stage_site = load_hook("stage_site")
    with pytest.raises(stage_site.StagingError):
        stage_site.stage(REPO_ROOT / "static-web", tmp_path / "site", url)
    assert not (tmp_path / "site").exists()


def test_connect_src_is_added_once_and_created_when_missing():
    stage_site = load_hook("stage_site")
    origin = "https://func.azurewebsites.net"
    once = stage_site.with_connect_src("default-src 'self'; connect-src 'self'", origin)
    assert once == f"default-src 'self'; connect-src 'self' {origin}"
    assert stage_site.with_connect_src(once, origin) == once
    assert stage_site.with_connect_src("default-src 'self'", origin) == (
        f"default-src 'self'; connect-src 'self' {origin}"
    )
