"""The Azure ML pipeline (conversion/azureml/), rehearsed here as Azure ML would run it.

Every spec loads with azure-ai-ml's own loaders; then the pipeline job is read, each component's
`command:` is resolved with its inputs bound to local paths (a small MNIST subset, one folder per
output, Azurite's connection instead of the account URL) and run as a subprocess in the
pipeline's order, and the published file meets the running promoter: the function app served by
the local host, fed by its Event Grid stand-in, as `make run` runs it. The train workflow that
submits the pipeline is checked against the files it names. The good run adds people's
corrections (a folder of stored items, the train step's optional `feedback` input); the weak
one has none.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from azure.storage.blob import ContainerClient
from marshmallow.warnings import Marshmallow4Warning

from tests.conftest import mnist_path
from tests.stack import REPO_ROOT, running_local_host
from tests.training.test_feedback_training import feedback_folder

# azure-ai-ml's schemas use marshmallow features that marshmallow 4 changes or drops.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", Marshmallow4Warning)
    from azure.ai.ml import (
        load_component,
        load_compute,
        load_data,
        load_environment,
        load_job,
    )
pytestmark = pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning")

AZUREML = REPO_ROOT / "conversion" / "azureml"
PIPELINE = AZUREML / "pipeline.yml"
TRAIN_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "train.yml"
STEP_ORDER = ["train", "convert", "evaluate", "publish"]
LOADERS = {
    "environment.schema.json": load_environment,
    "amlCompute.schema.json": load_compute,
    "data.schema.json": load_data,
    "commandComponent.schema.json": load_component,
    "pipelineJob.schema.json": load_job,
}
# What the steps import (conversion/, and functions/ for the contract and the signature).
TRAINING_PACKAGES = {
    "tensorflow-cpu",
    "tf2onnx",
    "onnx",
    "matplotlib",
    "numpy",
    "onnxruntime",
    "azure-storage-blob",
    "azure-identity",
}
# A tiny model cannot reach the production floor (0.98) in seconds; the gate's floor is an app
# setting (PROMOTION_MIN_ACCURACY), so the rehearsal's promoter runs with a lower one.
REHEARSAL_GATE_FLOOR = 0.9
SIGNING_KEY = "rehearsal-signing-key"
BINDING = re.compile(r"\$\{\{(inputs|outputs)\.(\w+)\}\}")
PARENT_BINDING = re.compile(r"\$\{\{parent\.(?:inputs\.(\w+)|jobs\.(\w+)\.outputs\.(\w+))\}\}")
OPTIONAL_PART = re.compile(r"\$\[\[(.*?)\]\]")
ACCOUNT_URL_STAND_IN = "https://rehearsal.blob.core.windows.net"

# azure-ai-ml's schemas use a marshmallow feature that marshmallow 4 drops.
pytestmark = pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning")


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def azureml_specs() -> list[Path]:
    """Every Azure ML spec: each YAML file here but the conda file the environment points at."""
    conda_file = read_yaml(AZUREML / "environment.yml")["conda_file"]
    return sorted(path for path in AZUREML.rglob("*.yml") if path.name != conda_file)


def pins(path: Path) -> dict[str, str]:
    """name (lower case) -> version of each `name==version` line of a requirements file."""
    found = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            found[name.strip().lower()] = version.strip()
    return found


# --- the specs -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", azureml_specs(), ids=lambda path: str(path.relative_to(AZUREML)))
def test_every_spec_loads_with_azure_ai_ml(path: Path) -> None:
    schema = read_yaml(path).get("$schema", "")
    assert schema.startswith("https://azuremlschemas.azureedge.net/latest/"), f"{path}: $schema"
    loader = LOADERS[schema.rsplit("/", 1)[1]]
    assert loader(path) is not None


def test_the_specs_cover_every_kind() -> None:
    kinds = {read_yaml(path)["$schema"].rsplit("/", 1)[1] for path in azureml_specs()}
    assert kinds == set(LOADERS)


def test_the_environment_pins_what_the_requirements_pin() -> None:
    environment = load_environment(AZUREML / "environment.yml")
    conda = environment.conda_file
    assert "python=3.13" in conda["dependencies"]
    (pip_section,) = [item for item in conda["dependencies"] if isinstance(item, dict)]
    environment_pins = {}
    for line in pip_section["pip"]:
        name, version = line.split("==")
        environment_pins[name.lower()] = version
    required = pins(REPO_ROOT / "requirements.txt") | pins(REPO_ROOT / "requirements-dev.txt")
    assert set(environment_pins) >= TRAINING_PACKAGES
    for name, version in environment_pins.items():
        assert required.get(name) == version, f"{name}=={version} is not pinned so in requirements"


def test_components_run_this_repository_in_the_registered_environment() -> None:
    environment = load_environment(AZUREML / "environment.yml")
    compute = load_compute(AZUREML / "compute.yml")
    assert compute.min_instances == 0  # scales to zero: no cost while idle
    assert read_yaml(PIPELINE)["settings"]["default_compute"] == f"azureml:{compute.name}"
    for step in STEP_ORDER:
        path = AZUREML / read_yaml(PIPELINE)["jobs"][step]["component"]
        spec = read_yaml(path)
        assert spec["environment"] == f"azureml:{environment.name}:{environment.version}"
        assert (path.parent / spec["code"]).resolve() == REPO_ROOT
        (module,) = re.findall(r"python -m ([\w.]+)", spec["command"])
        assert module.startswith("conversion.")
        assert importlib.util.find_spec(module) is not None, module


def test_feedback_is_an_optional_folder_of_the_train_step() -> None:
    """Off unless set on the job (`--set jobs.train.inputs.feedback.path=...`): azure-ai-ml
    refuses a pipeline input without a path, so the optional input is the train job's."""
    spec = read_yaml(PIPELINE)
    train = read_yaml(AZUREML / spec["jobs"]["train"]["component"])
    assert train["inputs"]["feedback"] == {
        **train["inputs"]["feedback"],
        "type": "uri_folder",
        "optional": True,
    }
    assert "$[[--feedback ${{inputs.feedback}}]]" in " ".join(train["command"].split())
    assert "feedback" not in (spec["jobs"]["train"].get("inputs") or {})
    assert "jobs.train.inputs.feedback.path=" in PIPELINE.read_text()
    # The held-out part travels in the train step's output, which evaluate already reads.
    assert spec["jobs"]["evaluate"]["inputs"]["trained"] == "${{parent.jobs.train.outputs.trained}}"
    job = load_job(
        PIPELINE,
        params_override=[
            {"jobs.train.inputs.feedback.type": "uri_folder"},
            {"jobs.train.inputs.feedback.path": str(REPO_ROOT)},
        ],
    )
    data = job.jobs["train"].inputs["feedback"]._data  # the Input the CLI would upload
    assert (data.type, data.path) == ("uri_folder", str(REPO_ROOT))


def test_the_pipeline_chains_the_steps_and_reads_the_registered_data() -> None:
    spec = read_yaml(PIPELINE)
    assert list(spec["jobs"]) == STEP_ORDER
    assert dependency_order(spec) == STEP_ORDER
    data = load_data(AZUREML / "mnist-data.yml")
    assert spec["inputs"]["mnist"]["path"] == f"azureml:{data.name}:{data.version}"
    assert spec["jobs"]["publish"]["inputs"]["model"] == "${{parent.jobs.evaluate.outputs.model}}"
    assert {"version", "account_url"} <= set(spec["inputs"])


def dependency_order(spec: dict) -> list[str]:
    """The jobs in an order that runs each after the jobs whose outputs it reads."""
    needs = {
        name: {
            match.group(2)
            for value in (job.get("inputs") or {}).values()
            for match in PARENT_BINDING.finditer(str(value))
            if match.group(2)
        }
        for name, job in spec["jobs"].items()
    }
    order: list[str] = []
    while len(order) < len(needs):
        ready = [name for name in needs if name not in order and needs[name] <= set(order)]
        assert ready, f"the jobs' bindings form a cycle: {needs}"
        order.append(ready[0])
    return order


# --- the rehearsal ---------------------------------------------------------------------------


@dataclass
class StepRun:
    step: str
    command: str
    returncode: int
    stderr: str
    seconds: float
    outputs: dict[str, Path] = field(default_factory=dict)


def apply_overrides(spec: dict, overrides: dict[str, object]) -> dict:
    """`az ml job create --set key=value` on the YAML's dictionary."""
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return spec


def resolve_command(
    component: dict, values: dict[str, object], outputs: dict[str, Path], connection: str
) -> str:
    """The component's command as Azure ML runs it: optional parts `$[[...]]` kept only when
    their inputs are bound, every `${{inputs.x}}`/`${{outputs.y}}` replaced by its value; and,
    here, the storage account's URL swapped for Azurite's connection string."""

    def bound(match: re.Match[str]) -> str:
        names = [name for kind, name in BINDING.findall(match.group(1)) if kind == "inputs"]
        return match.group(1) if all(values.get(name) is not None for name in names) else ""

    def value(match: re.Match[str]) -> str:
        kind, name = match.groups()
        return shlex.quote(str(values[name] if kind == "inputs" else outputs[name]))

    command = BINDING.sub(value, OPTIONAL_PART.sub(bound, " ".join(component["command"].split())))
    url_argument = f"--account-url {ACCOUNT_URL_STAND_IN}"
    if url_argument in command:
        command = command.replace(url_argument, f"--connection-string {shlex.quote(connection)}")
    return command


def step_values(
    spec: dict, step: str, component: dict, data: dict[str, Path], upstream: dict[str, Path]
) -> dict[str, object]:
    """Each component input's value: bound to a pipeline input (data assets: a local file), to
    an earlier step's output folder, a literal, or the component's default."""
    values: dict[str, object] = {}
    bindings = spec["jobs"][step].get("inputs") or {}
    for name, declared in component["inputs"].items():
        binding = bindings.get(name)
        match = PARENT_BINDING.fullmatch(str(binding)) if binding is not None else None
        if match and match.group(1):
            pipeline_input = spec["inputs"][match.group(1)]
            is_data = isinstance(pipeline_input, dict)
            values[name] = data[match.group(1)] if is_data else pipeline_input
        elif match:
            values[name] = upstream[f"{match.group(2)}.{match.group(3)}"]
        elif isinstance(binding, dict):  # data set on the job itself: a local folder here
            values[name] = Path(binding["path"])
        elif binding is not None:
            values[name] = binding
        else:
            values[name] = declared.get("default")
        if values[name] is None and not declared.get("optional"):
            pytest.fail(f"{step}: its required input {name} is bound to nothing")
    return values


def run_pipeline(
    workspace: Path,
    data: dict[str, Path],
    connection: str,
    overrides: dict[str, object],
    *,
    only: list[str] | None = None,
    upstream: dict[str, Path] | None = None,
) -> list[StepRun]:
    """Resolves and runs the pipeline's steps in order; stops at the first that fails."""
    # azure-ai-ml validates the overridden job first, as `az ml job create --set` would.
    load_job(PIPELINE, params_override=[{key: value} for key, value in overrides.items()])
    spec = apply_overrides(read_yaml(PIPELINE), overrides)
    upstream = dict(upstream or {})
    runs = []
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MODEL_SIGNING_KEY": "",
    }
    for step in dependency_order(spec):
        if only is not None and step not in only:
            continue
        component = read_yaml(AZUREML / spec["jobs"][step]["component"])
        outputs = {name: workspace / step / name for name in component.get("outputs") or {}}
        for folder in outputs.values():
            folder.mkdir(parents=True)  # Azure ML mounts an empty folder for each output
        values = step_values(spec, step, component, data, upstream)
        command = resolve_command(component, values, outputs, connection)
        if "account_url" in values:  # never Azure from here
            assert "--connection-string" in command, command
        step_environment = {
            **environment,
            **{
                name: str(value)
                for name, value in (spec["jobs"][step].get("environment_variables") or {}).items()
            },
        }
        started = time.perf_counter()
        completed = subprocess.run(
            ["bash", "-c", command],
            cwd=REPO_ROOT,
            env=step_environment,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        run = StepRun(
            step,
            command,
            completed.returncode,
            completed.stderr,
            round(time.perf_counter() - started, 1),
            outputs,
        )
        runs.append(run)
        print(f"\n[{step}] {run.seconds} s, exit {run.returncode}: {command}")
        if completed.returncode:
            break
        upstream.update({f"{step}.{name}": folder for name, folder in outputs.items()})
    return runs


@pytest.fixture(scope="module")
def mnist_subset(tmp_path_factory) -> Path:
    """10,000 training and 2,000 test digits of MNIST, in the data asset's format."""
    with np.load(mnist_path()) as archive:
        subset = {
            "x_train": archive["x_train"][:10_000],
            "y_train": archive["y_train"][:10_000],
            "x_test": archive["x_test"][:2_000],
            "y_test": archive["y_test"][:2_000],
        }
    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    np.savez(path, **subset)
    return path


@dataclass
class RunningPromoter:
    api: str
    container: ContainerClient

    def decision_on(self, version: str, timeout: float = 180) -> dict:
        """The decision on `version` as GET /api/models shows it (the audit log's tail)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{self.api}/models", timeout=30) as response:
                listing = json.loads(response.read())
            for decision in listing["decisions"]:
                if decision.get("version") == version:
                    return {**decision, "current": listing["current"]["version"]}
            time.sleep(1)
        raise AssertionError(f"no decision on {version} in {timeout:g} s: {listing}")

    def served_version(self, expected: str, timeout: float = 120) -> str:
        """The version GET /api/health reports, once it is `expected` or `timeout` has passed:
        each instance follows current.json on its own, a moment after the decision."""
        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen(f"{self.api}/health", timeout=30) as response:
                version = json.loads(response.read())["model"]["version"]
            if version == expected or time.monotonic() > deadline:
                return version
            time.sleep(1)


@pytest.fixture(scope="module")
def promoter(azurite, azurite_process, tmp_path_factory):
    """The function app on the local host with its models container in Azurite, and the Event
    Grid stand-in posting BlobCreated events for incoming/ to its Event Grid trigger."""
    container = ContainerClient.from_connection_string(azurite, f"aml-{uuid.uuid4().hex[:12]}")
    container.create_container()  # infra/ creates it in Azure
    logs = tmp_path_factory.mktemp("promoter")
    environment = {
        **os.environ,
        "MODELS_STORAGE": azurite,
        "MODELS_CONTAINER": container.container_name,
        "MODEL_REFRESH_SECONDS": "1",
        "PROMOTION_MIN_ACCURACY": str(REHEARSAL_GATE_FLOOR),
        "PROMOTION_MAX_REGRESSION": "0.1",
        "MODEL_SIGNING_KEY": SIGNING_KEY,
    }
    try:
        with running_local_host(environment, logs / "stack.log", stack=azurite_process) as api:
            yield RunningPromoter(api, container)
    finally:
        container.delete_container()


def rehearsal_overrides(version: str, **more: object) -> dict[str, object]:
    return {
        "inputs.version": version,
        "inputs.account_url": ACCOUNT_URL_STAND_IN,
        "jobs.publish.environment_variables.MODEL_SIGNING_KEY": SIGNING_KEY,
        **more,
    }


@pytest.mark.slow
def test_a_small_run_is_published_signed_and_accepted(
    promoter, mnist_subset, azurite, tmp_path
) -> None:
    feedback, counts = feedback_folder(tmp_path / "feedback")
    overrides = rehearsal_overrides(
        "rehearsal-good",
        **{
            "inputs.epochs": 2,
            "inputs.min_accuracy": REHEARSAL_GATE_FLOOR,
            "inputs.container": promoter.container.container_name,
            "jobs.train.inputs.limit": 8000,
            "jobs.train.inputs.batch_size": 32,
            "jobs.train.inputs.seed": 7,
            "jobs.train.inputs.feedback.type": "uri_folder",
            "jobs.train.inputs.feedback.path": str(feedback),
        },
    )
    started = time.perf_counter()
    runs = run_pipeline(tmp_path, {"mnist": mnist_subset}, azurite, overrides)

    assert [run.step for run in runs] == STEP_ORDER
    for run in runs:
        assert run.returncode == 0, f"{run.step} failed:\n{run.stderr}"
    model_folder = runs[2].outputs["model"]
    assert {path.name for path in model_folder.iterdir()} == {
        "model.onnx",
        "report.json",
        "confusion_matrix.png",
        "MODEL_CARD.md",
    }
    report = json.loads((model_folder / "report.json").read_text())
    assert report["metadata"]["version"] == "rehearsal-good"
    assert report["verification"]["argmax_disagreements"] == 0
    assert f"--feedback {feedback}" in runs[0].command
    assert (runs[0].outputs["trained"] / "feedback_held_out.npz").is_file()
    recorded = report["feedback"]
    assert {key: recorded[key] for key in counts} == counts
    assert recorded["training"] + recorded["held_out"] == counts["used"]
    assert recorded["held_out_accuracy"] is not None
    assert recorded["bundled_model"]["held_out_accuracy"] is not None

    decision = promoter.decision_on("rehearsal-good")
    print(f"\nrehearsal (good run) {time.perf_counter() - started:.0f} s; decision {decision}")
    assert decision["decision"] == "accepted", decision
    assert promoter.served_version("rehearsal-good") == "rehearsal-good"
    stored = promoter.container.get_blob_client("versions/rehearsal-good.onnx")
    assert stored.download_blob().readall() == (model_folder / "model.onnx").read_bytes()


@pytest.mark.slow
def test_a_weak_run_is_refused_by_the_gate_for_accuracy(
    promoter, mnist_subset, azurite, tmp_path
) -> None:
    # The evaluate step's floor is lowered so that the file reaches the gate: the gate must
    # refuse it on its own.
    overrides = rehearsal_overrides(
        "rehearsal-weak",
        **{
            "inputs.epochs": 1,
            "inputs.min_accuracy": 0.0,
            "inputs.container": promoter.container.container_name,
            "jobs.train.inputs.limit": 500,
        },
    )
    runs = run_pipeline(tmp_path / "weak", {"mnist": mnist_subset}, azurite, overrides)
    for run in runs:
        assert run.returncode == 0, f"{run.step} failed:\n{run.stderr}"
    assert "--feedback" not in runs[0].command
    report = json.loads((runs[2].outputs["model"] / "report.json").read_text())
    assert report["feedback"]["source"] is None
    assert report["feedback"]["held_out_accuracy"] is None
    assert report["metadata"]["training_data_sha256"] == report["data"]["sha256"]

    decision = promoter.decision_on("rehearsal-weak")
    assert decision["decision"] == "rejected", decision
    assert decision["check"] == "accuracy"
    assert "under the floor" in decision["reason"]
    assert decision["current"] != "rehearsal-weak"

    # With the pipeline's own floor, the evaluate step stops the same run before publishing.
    upstream = {
        f"{run.step}.{name}": folder for run in runs[:2] for name, folder in run.outputs.items()
    }
    floor = rehearsal_overrides("rehearsal-weak-floor")
    (evaluate,) = run_pipeline(
        tmp_path / "floor",
        {"mnist": mnist_subset},
        azurite,
        floor,
        only=["evaluate"],
        upstream=upstream,
    )
    assert evaluate.returncode == 1
    assert "evaluate step failed: test accuracy" in evaluate.stderr
    assert "under the floor 0.9800" in evaluate.stderr


MISSING = {
    "train": ("mnist.npz: no such file or folder", "train step failed"),
    "convert": ("missing; expected the train step's model.keras", "convert step failed"),
    "evaluate": ("missing; expected the train step's training.json", "evaluate step failed"),
    "publish": ("model.onnx", "not published"),
}


@pytest.mark.slow
@pytest.mark.parametrize("step", STEP_ORDER)
def test_each_step_fails_clearly_when_its_input_is_missing(
    step, azurite, promoter, tmp_path
) -> None:
    empty = tmp_path / "empty-upstream"
    empty.mkdir()
    upstream = {
        "train.trained": empty,
        "convert.converted": empty,
        "evaluate.model": empty,
    }
    overrides = rehearsal_overrides(
        "rehearsal-missing", **{"inputs.container": promoter.container.container_name}
    )
    (run,) = run_pipeline(
        tmp_path / "run",
        {"mnist": tmp_path / "mnist.npz"},  # never written
        azurite,
        overrides,
        only=[step],
        upstream=upstream,
    )
    what, prefix = MISSING[step]
    assert run.returncode != 0
    assert prefix in run.stderr
    assert what in run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert not list(promoter.container.list_blobs("incoming/rehearsal-missing"))


# --- the workflow that submits it ------------------------------------------------------------


def test_the_train_workflow_names_only_what_exists() -> None:
    workflow = read_yaml(TRAIN_WORKFLOW)
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert {"version", "epochs", "feedback"} <= set(triggers["workflow_dispatch"]["inputs"])
    # Corrections are off unless asked for; their export runs only then.
    feedback = triggers["workflow_dispatch"]["inputs"]["feedback"]
    assert (feedback["type"], feedback["default"]) == ("boolean", False)
    (job,) = workflow["jobs"].values()
    (export,) = [
        step for step in job["steps"] if "conversion.feedback export" in step.get("run", "")
    ]
    assert export["if"] == "env.FEEDBACK == 'true'"
    assert "jobs.train.inputs.feedback.path=" in TRAIN_WORKFLOW.read_text()
    assert triggers["schedule"][0]["cron"]
    assert workflow["permissions"] == {"contents": "read"}
    text = TRAIN_WORKFLOW.read_text()
    for action in re.findall(r"uses:\s*(\S+)", text):
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), f"{action}: pin by SHA"
    paths = set(re.findall(r"(?<![\w./-])((?:conversion|infra|functions)/[\w./-]+\.\w+)", text))
    assert AZUREML.relative_to(REPO_ROOT).as_posix() + "/pipeline.yml" in paths
    for path in paths:
        assert (REPO_ROOT / path).is_file(), f"{path} is named in train.yml but missing"
    for module in re.findall(r"python -m ([\w.]+)", text):
        assert importlib.util.find_spec(module) is not None, f"python -m {module}"
    jobs = workflow["jobs"].values()
    assert any(job.get("permissions", {}).get("id-token") == "write" for job in jobs)


# --- the infrastructure behind it ------------------------------------------------------------

INFRA = REPO_ROOT / "infra"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


def test_infra_grants_the_cluster_the_models_container_only_and_is_off_by_default() -> None:
    main = (INFRA / "main.bicep").read_text()
    assert re.search(r"param azureMl string = 'none'", main)
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["azureMl"]["value"] == "${AZUREML=none}"
    grant = re.search(
        r"module trainingPublisherRole 'modules/container-role\.bicep' = if \(azureMl != 'none'\)"
        r" \{(.*?)\n\}",
        main,
        re.DOTALL,
    ).group(1)
    assert "containerName: modelsStorage.outputs.containerName" in grant
    assert "azureml.outputs.identityPrincipalId" in grant
    assert f"var storageBlobDataContributor = '{STORAGE_BLOB_DATA_CONTRIBUTOR}'" in main
    role = (INFRA / "modules" / "container-role.bicep").read_text()
    assert "scope: storage::blobService::container" in role  # not the account
    azureml = (INFRA / "modules" / "azureml.bicep").read_text()
    compute = load_compute(AZUREML / "compute.yml")
    assert f"param computeName string = '{compute.name}'" in azureml
    assert "minNodeCount: 0" in azureml
    assert "'${identity.id}': {}" in azureml  # the cluster runs as the publisher identity
