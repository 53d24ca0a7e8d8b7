"""The service's delivery files (Dockerfile, compose, Kubernetes, policy,
workflows), checked by real validators on every answer set.

There is no Docker engine, cluster or GitHub here, so these prove the files
are well formed, agree with each other and pass the linters and policies; they
do not prove the image builds and starts. The service's own CI does that
(`.github/workflows/ci.yml`: build, Trivy scan, smoke test on /ready).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support import (
    ROOT,
    answer_sets,
    effective,
    kustomize,
    missing,
    run,
    template_code,
    tool_env,
)
from tests.support.manifests import WORKLOADS, load_all, pod_containers, pod_spec

BIN = Path(sys.executable).parent
# The Kubernetes version the manifests are validated against (strict).
KUBERNETES_VERSION = "1.32.0"
CHECKOV_PROJECT = ROOT / "tools" / "checkov"
OVERLAYS = ("staging", "production")

_rendered: dict[str, Path] = {}


def rendered(answers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree rendered with the answers (no tasks: no lock): an
    answer set's render is shared with the other fast tests and kept between
    runs while the template is unchanged (tests/support/template_code.py);
    other answers are rendered once per test process."""
    for name, answer_set in answer_sets().items():
        if answer_set == answers:
            return template_code.rendered(name)
    key = json.dumps(answers, sort_keys=True)
    if key not in _rendered:
        destination = tmp_path_factory.mktemp("service") / "service"
        data = [f"--data={name}={value}" for name, value in answers.items()]
        run(
            [
                "copier", "copy", "--trust", "--defaults", "--skip-tasks",
                "--vcs-ref", "HEAD", *data, str(ROOT), str(destination),
            ],
            ROOT,
            tool_env(),
        ).check()  # fmt: skip
        _rendered[key] = destination
    return _rendered[key]


@pytest.fixture
def service(answers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree rendered with the answer set."""
    return rendered(answers, tmp_path_factory)


def render_overlay(project: Path, overlay: str) -> list[dict[str, Any]]:
    return kustomize.build(
        project / "deploy" / "k8s" / "overlays" / overlay, tool_env()
    )


def slug_of(project: Path) -> str:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    slug: str = answers["project_slug"]
    return slug


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def write_docs(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


# --- validators ------------------------------------------------------------


def kubernetes_validate(*files: Path) -> Any:
    return run(
        [
            str(BIN / "kubernetes-validate"),
            "--strict",
            "--quiet",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            *map(str, files),
        ],
        ROOT,
        tool_env(),
    )


def checkov(directory: Path, config: Path) -> Any:
    env = tool_env()
    env.pop("UV_PYTHON", None)
    return run(
        [
            "uv", "run", "--locked", "--quiet", "--project", str(CHECKOV_PROJECT),
            "checkov", "--config-file", str(config), "--directory", str(directory),
        ],
        ROOT,
        env,
    )  # fmt: skip


def policy_denials(project: Path, doc: dict[str, Any]) -> list[str]:
    from regopy import Interpreter

    interpreter = Interpreter()
    for policy in sorted((project / "deploy" / "policy").glob("*.rego")):
        interpreter.add_module(policy.stem, policy.read_text())
    interpreter.set_input_term(json.dumps(doc))
    output = json.loads(str(interpreter.query("data.main.deny")))
    assert "expressions" in output, output  # an evaluation error otherwise
    denials: list[str] = output["expressions"][0]
    return denials


# --- Dockerfile --------------------------------------------------------------


def dockerfile_instructions(project: Path) -> list[tuple[str, str]]:
    text = (project / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def dockerfile_env(project: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction, rest in dockerfile_instructions(project):
        if instruction == "ENV":
            values.update(re.findall(r"(\w+)=(\S+)", rest))
    return values


def test_the_dockerfile_passes_hadolint(service: Path) -> None:
    run([str(BIN / "hadolint"), "Dockerfile"], service, tool_env()).check()


def test_the_dockerfile_builds_a_small_non_root_image(service: Path) -> None:
    instructions = dockerfile_instructions(service)
    stages = [rest for name, rest in instructions if name == "FROM"]
    runtime_at = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    runtime = instructions[runtime_at:]

    assert len(stages) >= 3, stages  # uv, build, runtime
    assert any(
        "uv sync --locked --no-dev" in rest
        for name, rest in instructions
        if name == "RUN"
    )
    assert not any("uv" in rest.split() for name, rest in runtime if name == "RUN")
    users = [rest for name, rest in runtime if name == "USER"]
    assert users, "no USER in the runtime stage"
    assert users[-1].split(":")[0] not in {"0", "root"}, users
    command = [rest for name, rest in runtime if name == "CMD"][-1]
    assert json.loads(command) == ["python", "-m", "app", "serve"]  # exec form
    healthcheck = [rest for name, rest in runtime if name == "HEALTHCHECK"][-1]
    assert "/live" in healthcheck
    assert "curl" not in healthcheck
    assert (service / ".dockerignore").is_file()
    ignored = (service / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env"} <= set(ignored)
    environment = dockerfile_env(service)
    assert environment["SERVER_TRUSTED_PROXIES"] != "*"
    assert int(environment["SERVER_GRACEFUL_SHUTDOWN_TIMEOUT"]) > 0


# --- compose ---------------------------------------------------------------


def test_compose_matches_the_compose_spec(service: Path) -> None:
    run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            "compose.yaml",
        ],
        service,
        tool_env(),
    ).check()


def test_compose_runs_migrations_before_the_api(
    service: Path, answers: dict[str, Any]
) -> None:
    chosen = effective(answers)
    compose = yaml.safe_load((service / "compose.yaml").read_text())
    services = compose["services"]

    expected = {"migrate", "api", "redis"}
    if chosen["broker"] != "none":
        expected |= {"worker", chosen["broker"]}
    if chosen["production_database"] == "postgresql":
        expected.add("postgres")
    assert set(services) == expected
    # Every backing service the production Secret names runs in compose too.
    secret = yaml.safe_load((service / "deploy/k8s/secret.example.yaml").read_text())
    environment = services["api"]["environment"]
    for key in [key for key in secret["stringData"] if key.endswith("_DSN")]:
        assert key in environment, key
        assert urlsplit(environment[key]).hostname in services, (key, environment)
    assert services["migrate"]["command"] == ["python", "-m", "app", "migrate"]
    for name in {"api", "worker"} & set(services):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    for name in {"postgres", "redis", "rabbitmq"} & set(services):
        assert services[name]["healthcheck"]["test"], name
    assert services["api"]["env_file"] == [{"path": ".env", "required": False}]


# --- Kubernetes ------------------------------------------------------------


@pytest.fixture
def manifests(service: Path) -> dict[str, list[dict[str, Any]]]:
    return {overlay: render_overlay(service, overlay) for overlay in OVERLAYS}


def test_every_rendered_manifest_is_valid_for_the_pinned_kubernetes(
    service: Path, manifests: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    files = [
        write_docs(tmp_path / f"{name}.yaml", docs) for name, docs in manifests.items()
    ]
    files.append(
        service / "deploy" / "k8s" / "examples" / "linkerd" / "namespace-patch.yaml"
    )

    validated = kubernetes_validate(*files)

    assert validated.returncode == 0, validated.output
    for docs in manifests.values():
        kinds = {doc["kind"] for doc in docs}
        assert {
            "Deployment",
            "Service",
            "Ingress",
            "ConfigMap",
            "NetworkPolicy",
        } <= kinds
        assert {"PodDisruptionBudget", "ServiceAccount", "Namespace"} <= kinds
        assert "Secret" not in kinds  # created out of band, never committed


def test_strict_validation_refuses_an_unknown_field(
    manifests: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    docs = copy.deepcopy(manifests["production"])
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod_containers(deployment)[0]["livenesProbe"] = {"httpGet": {"path": "/live"}}

    validated = kubernetes_validate(write_docs(tmp_path / "typo.yaml", docs))

    assert validated.returncode != 0
    assert "livenesProbe" in validated.output


def test_the_overlays_differ_only_where_they_should(
    service: Path, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    slug = slug_of(service)
    for overlay, docs in manifests.items():
        namespace = slug if overlay == "production" else f"{slug}-staging"
        config = find(docs, "ConfigMap", f"{slug}-config")["data"]
        ingress = find(docs, "Ingress", f"{slug}-api")
        assert config["ENVIRONMENT"] == overlay
        assert ingress["spec"]["rules"][0]["host"] == config["ALLOWED_HOSTS"]
        assert ingress["spec"]["tls"][0]["hosts"] == [config["ALLOWED_HOSTS"]]
        assert {
            d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"
        } == {namespace}
        for doc in docs:
            for container in pod_containers(doc):
                assert container["image"].startswith("ghcr.io/"), container["image"]


def test_the_pods_are_locked_down(
    service: Path, manifests: dict[str, list[dict[str, Any]]], answers: dict[str, Any]
) -> None:
    chosen = effective(answers)
    docs = manifests["production"]
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    names = {d["metadata"]["name"] for d in workloads}
    slug = slug_of(service)
    expected = {f"{slug}-api"}
    if chosen["production_database"] == "postgresql":
        expected.add(f"{slug}-migrate")
        if chosen["broker"] != "none":
            expected.add(f"{slug}-worker")
    assert names == expected
    commands = {c["command"][2] for d in workloads for c in pod_containers(d)}
    assert ("app.worker" in commands) == (chosen["broker"] != "none")

    for doc in workloads:
        spec = pod_spec(doc)
        assert spec is not None
        assert spec["enableServiceLinks"] is False
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts  # the only writable place besides data


def test_checkov_finds_nothing_beyond_the_justified_skips(
    service: Path, manifests: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    scanned = tmp_path / "scanned"
    (scanned / ".github").mkdir(parents=True)
    shutil.copy(service / "Dockerfile", scanned / "Dockerfile")
    shutil.copytree(
        service / ".github" / "workflows", scanned / ".github" / "workflows"
    )
    for name, docs in manifests.items():
        write_docs(scanned / f"{name}.yaml", docs)
    config = service / ".checkov.yaml"

    result = checkov(scanned, config)

    assert result.returncode == 0, result.output
    for framework in (
        "dockerfile scan results",
        "kubernetes scan results",
        "github_actions scan results",
    ):
        assert framework in result.output, result.output
    # Every skip carries its reason in a comment just above it.
    lines = config.read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if re.match(r"\s+- CKV", line)]
    assert skips
    for i in skips:
        assert lines[i - 1].strip().startswith("#"), lines[i]


def test_checkov_fails_a_privileged_container(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    service = default_service(tmp_path_factory)
    docs = render_overlay(service, "production")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod_containers(deployment)[0]["securityContext"]["privileged"] = True
    scanned = tmp_path / "scanned"
    scanned.mkdir()
    write_docs(scanned / "production.yaml", docs)

    result = checkov(scanned, service / ".checkov.yaml")

    assert result.returncode != 0
    assert "CKV_K8S_16" in result.output  # "Container should not be privileged"


def test_the_rego_policies_pass_every_rendered_manifest(
    service: Path, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    for overlay, docs in manifests.items():
        for doc in docs:
            assert policy_denials(service, doc) == [], (overlay, doc["kind"])


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda spec, c: spec["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
        (lambda spec, c: spec.update(enableServiceLinks=True), "enableServiceLinks"),
        (
            lambda spec, c: c["securityContext"].update(readOnlyRootFilesystem=False),
            "read-only",
        ),
        (lambda spec, c: c["securityContext"]["capabilities"].update(drop=[]), "ALL"),
        (lambda spec, c: c.update(image="ghcr.io/acme/api:latest"), "pinned"),
        (lambda spec, c: c.update(image="ghcr.io/acme/api"), "pinned"),
        (lambda spec, c: c.pop("readinessProbe"), "readiness"),
        (lambda spec, c: c["resources"].pop("limits"), "memory limit"),
        (lambda spec, c: spec.pop("enableServiceLinks"), "enableServiceLinks"),
        (
            lambda spec, c: spec.pop("automountServiceAccountToken"),
            "automountServiceAccountToken",
        ),
        (
            lambda spec, c: c["securityContext"].pop("allowPrivilegeEscalation"),
            "allowPrivilegeEscalation",
        ),
    ],
    ids=[
        "root",
        "service-links",
        "writable",
        "capabilities",
        "latest",
        "untagged",
        "no-readiness",
        "no-limit",
        "service-links-unset",
        "token-unset",
        "escalation-unset",
    ],
)
def test_the_rego_policies_refuse_a_weakened_deployment(
    mutation: Any, message: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project = default_service(tmp_path_factory)
    docs = render_overlay(project, "production")
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    spec = pod_spec(deployment)
    assert spec is not None
    assert policy_denials(project, deployment) == []

    mutation(spec, spec["containers"][0])

    denials = policy_denials(project, deployment)
    assert len(denials) == 1, denials
    assert message in denials[0]


def default_service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rendered({}, tmp_path_factory)


# --- the numbers agree across files ------------------------------------------


def routes_in(project: Path) -> set[str]:
    source = "\n".join(p.read_text() for p in (project / "app").rglob("*.py"))
    return set(re.findall(r"@\w+\.(?:get|api_route)\(\s*\"([^\"]+)\"", source))


def test_ports_timeouts_and_probe_paths_agree_across_files(
    service: Path, manifests: dict[str, list[dict[str, Any]]], answers: dict[str, Any]
) -> None:
    chosen = effective(answers)
    slug = slug_of(service)
    docker_env = dockerfile_env(service)
    exposed = {
        int(rest) for name, rest in dockerfile_instructions(service) if name == "EXPOSE"
    }
    healthcheck = next(
        rest for name, rest in dockerfile_instructions(service) if name == "HEALTHCHECK"
    )
    compose = yaml.safe_load((service / "compose.yaml").read_text())
    routes = routes_in(service)
    assert {"/live", "/ready"} <= routes, routes

    assert exposed == {int(docker_env["SERVER_PORT"])}
    # The health check asks the port the server listens on (SERVER_PORT).
    assert (
        "'http://127.0.0.1:%s/live' % (os.environ.get('SERVER_PORT') or" in healthcheck
    )
    assert f"or '{docker_env['SERVER_PORT']}')" in healthcheck
    assert (
        compose["services"]["api"]["ports"][0].rsplit(":", 1)[1]
        == docker_env["SERVER_PORT"]
    )
    for docs in manifests.values():
        config = find(docs, "ConfigMap", f"{slug}-config")["data"]
        api = find(docs, "Deployment", f"{slug}-api")
        service_ports = find(docs, "Service", f"{slug}-api")["spec"]["ports"]
        container = next(c for c in pod_containers(api) if c["name"] == "api")
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        spec = pod_spec(api)
        assert spec is not None

        assert (
            ports["http"]
            == int(config["SERVER_PORT"])
            == int(docker_env["SERVER_PORT"])
        )
        assert [p["targetPort"] for p in service_ports] == [ports["http"]]
        assert ports["metrics"] == int(config["METRICS_PORT"])
        for probe, path in (
            ("livenessProbe", "/live"),
            ("readinessProbe", "/ready"),
            ("startupProbe", "/live"),
        ):
            assert container[probe]["httpGet"]["path"] == path
            assert container[probe]["httpGet"]["path"] in routes
            assert container[probe]["httpGet"]["port"] == "http"
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        shutdown = int(config["SERVER_GRACEFUL_SHUTDOWN_TIMEOUT"])
        assert shutdown == int(docker_env["SERVER_GRACEFUL_SHUTDOWN_TIMEOUT"])
        assert spec["terminationGracePeriodSeconds"] > pause + shutdown
        ingress_ports = {
            port["port"]
            for policy in docs
            if policy["kind"] == "NetworkPolicy"
            and policy["spec"]["podSelector"]["matchLabels"].get(
                "app.kubernetes.io/component"
            )
            == "api"
            for rule in policy["spec"].get("ingress", [])
            for port in rule["ports"]
        }
        assert ports["http"] in ingress_ports
        assert ports["metrics"] in ingress_ports

        if chosen["broker"] != "none":
            worker_timeout = float(config["WORKER_SHUTDOWN_TIMEOUT"])
            workers = [
                (pod_spec(d), c)
                for d in docs
                for c in pod_containers(d)
                if c["command"][:3] == ["python", "-m", "app.worker"]
            ]
            assert len(workers) == 1
            worker_spec, worker = workers[0]
            assert worker_spec is not None
            assert worker_spec["terminationGracePeriodSeconds"] > worker_timeout
            metrics = {p["containerPort"] for p in worker["ports"]}
            assert metrics == {int(config["WORKER_METRICS_PORT"])}
        if chosen["production_database"] == "postgresql":
            assert config["DATABASE_MIGRATE_ON_START"] == "false"
            job = find(docs, "Job", f"{slug}-migrate")
            assert pod_containers(job)[0]["command"] == [
                "python",
                "-m",
                "app",
                "migrate",
            ]
        else:
            assert api["spec"]["replicas"] == 1
            assert api["spec"]["strategy"]["type"] == "Recreate"


def test_the_secret_example_lists_keys_without_values(service: Path) -> None:
    example = yaml.safe_load(
        (service / "deploy" / "k8s" / "secret.example.yaml").read_text()
    )

    assert example["kind"] == "Secret"
    assert "SECRET_KEY" in example["stringData"]
    for key, value in example["stringData"].items():
        assert value == "" or value.startswith("<") or "<password>" in value, key
    for kustomization in (service / "deploy" / "k8s").rglob("kustomization.yaml"):
        resources = yaml.safe_load(kustomization.read_text())["resources"]
        assert not any("secret" in resource for resource in resources), kustomization


def test_the_service_workflows_pass_the_schema_and_zizmor(service: Path) -> None:
    workflows = sorted((service / ".github" / "workflows").glob("*.yml"))
    assert service / ".github" / "workflows" / "ci.yml" in workflows

    run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, workflows),
        ],
        service,
        tool_env(),
    ).check()
    run(
        [str(BIN / "zizmor"), "--offline", *map(str, workflows)], service, tool_env()
    ).check()


def test_the_alert_rules_pass_their_promtool_unit_tests(service: Path) -> None:
    """What the service's CI runs; each alert has a unit test of its own."""
    promtool = shutil.which("promtool")
    if promtool is None:
        missing("promtool (Debian's prometheus package)")
    rules = sorted((service / "ops" / "prometheus").glob("*alerts.yml"))
    tests = sorted((service / "ops" / "prometheus").glob("*.test.yml"))
    assert [path.name.replace(".yml", ".test.yml") for path in rules] == [
        path.name for path in tests
    ]
    ci = (service / ".github" / "workflows" / "ci.yml").read_text()
    assert "promtool test rules ops/prometheus/*.test.yml" in ci
    for path in rules:
        assert f"ops/prometheus/{path.name}" in ci
    run(
        [str(promtool), "check", "rules", *map(str, rules)], service, tool_env()
    ).check()
    run([str(promtool), "test", "rules", *map(str, tests)], service, tool_env()).check()

    for rule_file, test_file in zip(rules, tests, strict=True):
        alerts = {
            rule["alert"]
            for group in yaml.safe_load(rule_file.read_text())["groups"]
            for rule in group["rules"]
        }
        tested = {
            case["alertname"]
            for test in yaml.safe_load(test_file.read_text())["tests"]
            for case in test.get("alert_rule_test", [])
            if case.get("exp_alerts")
        }
        assert alerts == tested, f"{rule_file.name}: alerts with no firing test"


def test_the_mesh_examples_select_the_services_pods(service: Path) -> None:
    slug = slug_of(service)
    examples = service / "deploy" / "k8s" / "examples"
    istio = load_all((examples / "istio" / "mtls.yaml").read_text())
    linkerd = yaml.safe_load(
        (examples / "linkerd" / "namespace-patch.yaml").read_text()
    )

    peer = next(doc for doc in istio if doc["kind"] == "PeerAuthentication")
    assert peer["spec"]["mtls"]["mode"] == "STRICT"
    for doc in istio:
        assert doc["apiVersion"] == "security.istio.io/v1"
        assert doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == slug
    policy = next(doc for doc in istio if doc["kind"] == "AuthorizationPolicy")
    admitted = {
        rule["from"][0]["source"]["namespaces"][0]: rule["to"][0]["operation"]["ports"]
        for rule in policy["spec"]["rules"]
    }
    # The same callers and ports as the NetworkPolicy of the API.
    docs = render_overlay(service, "production")
    ingress = {
        rule["from"][0]["namespaceSelector"]["matchLabels"][
            "kubernetes.io/metadata.name"
        ]: [str(port["port"]) for port in rule["ports"]]
        for doc in docs
        if doc["kind"] == "NetworkPolicy"
        and doc["metadata"]["name"].endswith("-api-ingress")
        for rule in doc["spec"]["ingress"]
    }
    for namespace, ports in admitted.items():
        assert set(ports) <= set(ingress[namespace]), (namespace, ports)
    assert linkerd["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
