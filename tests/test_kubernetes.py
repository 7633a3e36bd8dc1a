"""deploy/k8s without a cluster: every manifest against the Kubernetes API's schemas (``kubernetes-validate``, which
ships them: nothing is downloaded), and the manifests against each other and against the gateway that runs them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from gateway.cli import main as gateway_cli
from gateway.settings import load_config

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "deploy" / "k8s"
# The oldest Kubernetes the manifests are written for (autoscaling/v2, policy/v1 and friends are all GA there).
KUBERNETES = "1.30"
NAME = "mcp-gateway"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _resources() -> list[dict[str, Any]]:
    """Every resource the kustomization applies, in its order."""
    kustomization = _documents(MANIFESTS / "kustomization.yaml")[0]
    return [doc for name in kustomization["resources"] for doc in _documents(MANIFESTS / name)]


def _one(kind: str, name: str = NAME) -> dict[str, Any]:
    [found] = [r for r in _resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def _container() -> dict[str, Any]:
    [container] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_the_kustomization_applies_every_manifest_in_the_folder() -> None:
    kustomization = _documents(MANIFESTS / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    kinds = {r["kind"] for r in _resources()}
    expected = {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap", "Secret"}
    assert expected <= kinds


@pytest.mark.parametrize("resource", _resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_each_manifest_is_valid_against_the_kubernetes_schemas(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, KUBERNETES, strict=True)


def test_the_validator_refuses_a_misspelled_field() -> None:
    """Strict schemas: an unknown field is an error, so a typo in a probe cannot pass silently."""
    broken = copy.deepcopy(_one("Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_the_gateway_listens_where_the_probes_and_the_service_look() -> None:
    container = _container()
    command = container["command"]
    assert command[0] == NAME
    args = gateway_cli._parser().parse_args(command[1:])
    assert args.command == "serve" and args.host == "0.0.0.0"
    [port] = container["ports"]
    assert port["containerPort"] == args.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert _one("Service")["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_service_budget_and_autoscaler_all_select_the_deployments_pods() -> None:
    deployment = _one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert _one("Service")["spec"]["selector"] == selector
    assert _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    target = _one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", NAME)
    hpa = _one("HorizontalPodAutoscaler")["spec"]
    assert hpa["minReplicas"] >= 2, "one replica is a single point of failure"
    assert deployment["spec"]["replicas"] == hpa["minReplicas"]


def _environment() -> dict[str, str]:
    """What the gateway's environment holds in the pod: its own variables and the Secret's keys."""
    container = _container()
    env = {e["name"]: e["value"] for e in container["env"]}
    [source] = container["envFrom"]
    secret = _one("Secret", source["secretRef"]["name"])
    return {**env, **secret["stringData"]}


def test_the_config_map_is_a_config_the_gateway_loads_with_the_secrets_substituted(tmp_path: Path) -> None:
    container, env = _container(), _environment()
    volumes = {v["name"]: v for v in _one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    config_path = Path(env["GATEWAY_CONFIG"])
    [mount] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == config_path.parent]
    config_map = _one("ConfigMap", volumes[mount["name"]]["configMap"]["name"])
    path = tmp_path / config_path.name
    path.write_text(config_map["data"][config_path.name], encoding="utf-8")

    config = load_config(path, environ=env)
    assert config.security.auth.enabled, "the gateway listens beyond loopback: it needs credentials"
    store = urlsplit(config.security.limits.store.get_secret_value())
    redis = _one("Service", f"{NAME}-redis")
    assert (store.scheme, store.hostname, store.port) == (
        "redis",
        redis["metadata"]["name"],
        redis["spec"]["ports"][0]["port"],
    )
    assert {NAME, f"{NAME}:*"} <= set(config.security.http.allowed_hosts), "clients name the Service"

    pod = _one("Deployment")["spec"]["template"]["spec"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause + config.shutdown_grace, "calls in flight get their grace"
