"""Structural checks of ``deploy/``: Kubernetes manifests, the compose file, the Dockerfile, the
EMQX configuration and the systemd units (the latter through ``systemd-analyze verify``).

Every ``HOMECARE_*`` name anywhere in ``deploy/`` must be a real setting of
``services/settings.py``, and the values the manifests give must pass ``settings.load`` (so a typo
or a bad role list fails here, not at 3 a.m. in a crash loop).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devices import credentials
from services import settings as settings_mod

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
SETTING_NAMES = {
    settings_mod.PREFIX + f.name.upper() for f in dataclasses.fields(settings_mod.Settings)
}
SECRET_VALUES = {
    "HOMECARE_DATABASE_URL": "postgresql://homecare:pw@postgres:5432/homecare",
    "HOMECARE_MQTT_URL": "mqtts://homecare_backend:pw@mosquitto:8884",
    "HOMECARE_SESSION_SECRET": "s" * 32,
    "HOMECARE_TURN_SECRET": "t" * 32,
    "HOMECARE_INSTANCE_ID": "homecare-api-7d9f-abcde",
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _k8s() -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in _docs(p)]


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _k8s() if d.get("kind") == kind]


def _config_data() -> dict[str, str]:
    (cm,) = [d for d in _of_kind("ConfigMap") if d["metadata"]["name"] == "homecare-config"]
    return {k: str(v) for k, v in cm["data"].items()}


def _container(dep: dict[str, Any]) -> dict[str, Any]:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def _plain_env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in c.get("env", []) if "value" in e}


def test_every_file_parses() -> None:
    files = [*sorted(K8S.glob("*.yaml")), COMPOSE]
    assert len(files) >= 8
    for path in files:
        assert _docs(path), path


def test_every_homecare_name_in_deploy_is_a_real_setting() -> None:
    used: dict[str, set[str]] = {}
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.name != "README.md":
            for name in re.findall(r"\bHOMECARE_[A-Z0-9_]+", path.read_text(errors="replace")):
                used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert "HOMECARE_ROLES" in used
    unknown = {n: sorted(p) for n, p in used.items() if n not in SETTING_NAMES}
    assert not unknown, f"not settings of services/settings.py: {unknown}"


def test_kubernetes_deployments_one_per_role_with_probes_and_resources() -> None:
    deployments = _of_kind("Deployment")
    config = _config_data()
    port = int(config["HOMECARE_HTTP_PORT"])
    roles_seen: list[tuple[str, ...]] = []
    for dep in deployments:
        name = dep["metadata"]["name"]
        pod = dep["spec"]["template"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        c = _container(dep)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"http": port}, name
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        for kind in ("requests", "limits"):
            assert set(c["resources"][kind]) == {"cpu", "memory"}, name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        # the values this pod starts with are accepted by settings.load, secrets filled in
        env = {**config, **_plain_env(c)}
        secrets = {e["name"] for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})}
        assert {"HOMECARE_DATABASE_URL", "HOMECARE_MQTT_URL", "HOMECARE_SESSION_SECRET"} <= secrets
        for e in c["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "homecare-secrets", name
        env.update({k: v for k, v in SECRET_VALUES.items() if k in secrets or k not in env})
        loaded = settings_mod.load({k: v for k, v in env.items() if k.startswith("HOMECARE_")})
        assert loaded.http_port == port
        roles_seen.append(loaded.roles)
    assert sorted(roles_seen) == sorted([("api", "signalling"), ("rounds",), ("probes",)])
    assert {r for roles in roles_seen for r in roles} == set(settings_mod.ROLES)


def test_every_deployment_has_a_disruption_budget_and_services_select_pods() -> None:
    deployments = _of_kind("Deployment")
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments]
    pdbs = _of_kind("PodDisruptionBudget")
    for pod_labels in labels:
        covering = [
            p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        ]
        assert len(covering) == 1, pod_labels
        assert covering[0]["spec"]["minAvailable"] >= 1
    services = _of_kind("Service")
    assert {s["metadata"]["name"] for s in services} >= {"homecare-api"}
    for svc in services:
        selected = [pl for pl in labels if svc["spec"]["selector"].items() <= pl.items()]
        assert selected, svc["metadata"]["name"]
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] == "http"


def test_kustomization_lists_every_manifest() -> None:
    (kust,) = _docs(K8S / "kustomization.yaml")
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files


def test_jobs_run_real_commands_with_valid_settings() -> None:
    config = _config_data()
    for doc in _of_kind("Job") + _of_kind("CronJob"):
        spec = doc["spec"]
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        (c,) = spec["template"]["spec"]["containers"]
        assert c["args"][0] in {"migrate", "night-sheet"}
        assert set(c["resources"]) == {"requests", "limits"}
        env = {
            **config,
            **_plain_env(c),
            "HOMECARE_DATABASE_URL": SECRET_VALUES["HOMECARE_DATABASE_URL"],
        }
        settings_mod.load(env)
        from tools.cli import parser

        parser().parse_args(c["args"])  # the command line is one homecare accepts


def test_compose_has_every_component_and_consistent_roles() -> None:
    (compose,) = _docs(COMPOSE)
    services = compose["services"]
    assert {"postgres", "mosquitto", "coturn", "migrate", "api", "rounds", "probes"} <= set(
        services
    )
    roles = []
    for name in ("api", "rounds", "probes"):
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        # compose substitutes ${VAR} from .env: fill them the way .env.example names them
        filled = {
            k: re.sub(r"\$\{(\w+)(:\?[^}]*)?\}", lambda m: m.group(1).lower(), v)
            for k, v in env.items()
            if k.startswith("HOMECARE_")
        }
        filled["HOMECARE_DATABASE_URL"] = SECRET_VALUES["HOMECARE_DATABASE_URL"]
        filled["HOMECARE_MQTT_URL"] = SECRET_VALUES["HOMECARE_MQTT_URL"]
        loaded = settings_mod.load(filled)
        assert loaded.cookie_secure is True
        assert loaded.turn_urls
        roles.append(loaded.roles)
        assert services[name]["healthcheck"]["test"][-1].count("/readyz") == 1
    assert {r for rs in roles for r in rs} == set(settings_mod.ROLES)
    assert services["migrate"]["command"] == ["migrate"]
    # the broker runs the security engineer's config with ACL and TLS, coturn ours
    mounts = [v.split(":")[0] for v in services["mosquitto"]["volumes"]]
    assert "../mosquitto/mosquitto.conf" in mounts
    assert "../coturn/turnserver.conf" in [v.split(":")[0] for v in services["coturn"]["volumes"]]
    for mount in [*mounts, "../coturn/turnserver.conf"]:
        if mount.startswith("../"):
            assert (COMPOSE.parent / mount).resolve().is_file(), mount
    assert "8883:8883" in services["mosquitto"]["ports"]
    example = (DEPLOY / "compose" / ".env.example").read_text()
    needed = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert needed <= set(re.findall(r"^(\w+)=", example, re.M)), needed


def test_dockerfile_copies_what_exists() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    sources = [s for line in re.findall(r"^COPY (.+) \S+$", text, re.M) for s in line.split()]
    assert sources
    for s in sources:
        assert (ROOT / s).exists(), s
    packages = re.search(r"include = \[(.*?)\]", (ROOT / "pyproject.toml").read_text())
    assert packages is not None
    for pkg in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert f"COPY {pkg} {pkg}" in text, pkg


def test_emqx_config_matches_the_credentials_and_acl() -> None:
    conf = (DEPLOY / "emqx" / "emqx.conf").read_text()
    body = "\n".join(line.split("##")[0] for line in conf.splitlines())
    assert body.count("{") == body.count("}")
    assert body.count("[") == body.count("]")
    assert "mac_fun = sha512" in body
    assert f"iterations = {credentials.DEFAULT_ITERATIONS}" in body
    assert f"dk_length = {credentials.HASH_BYTES}" in body
    assert "no_match = deny" in body
    assert re.search(r"zones\.devices \{\s*mqtt \{\s*use_username_as_clientid = true", body)
    acl = credentials.render(
        (DEPLOY / "emqx" / "acl.conf").read_text(), credentials.acl_values("hc/v1")
    )
    rules = [line for line in acl.splitlines() if line and not line.startswith("%%")]
    assert rules == [
        '{allow, {username, "homecare_backend"}, all, ["hc/v1/#"]}.',
        '{allow, all, all, ["hc/v1/dev/${username}/#"]}.',
        '{allow, all, subscribe, ["hc/v1/server/status"]}.',
        "{deny, all}.",
    ]


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    units = sorted((DEPLOY / "systemd").glob("homecare*.service")) + sorted(
        (DEPLOY / "systemd").glob("*.timer")
    )
    assert len(units) >= 4
    homecare = shutil.which("homecare") or str(Path(ROOT / ".venv" / "bin" / "homecare"))
    for unit in units:
        text = unit.read_text().replace("/opt/homecare/venv/bin/homecare", homecare)
        if shutil.which("cage") is None:  # the screen's compositor, on the unit only
            text = text.replace("/usr/bin/cage ", "/usr/bin/env cage ")
        (tmp_path / unit.name).write_text(text)
    proc = subprocess.run(
        [analyze, "verify", *[str(tmp_path / u.name) for u in units]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    ours = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if "homecare" in line and "Failed to read $container" not in line
    ]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not ours, ours
    for unit in units:
        for line in unit.read_text().splitlines():
            if line.startswith("EnvironmentFile="):
                assert line == "EnvironmentFile=/etc/homecare/homecare.env"
    example = (DEPLOY / "systemd" / "homecare.env.example").read_text()
    env = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )
    assert settings_mod.load(env).cookie_secure is True


def test_emqx_names_the_shared_subscription_groups_the_code_uses() -> None:
    """Each backend process is one member of each group; EMQX keeps a device's messages on one
    of them (``hash_clientid``)."""
    from devices.intake import SHARE_GROUP as REGISTRY
    from services.signalling.bus import SHARE_GROUP as SIGNAL

    body = "\n".join(
        line.split("##")[0] for line in (DEPLOY / "emqx" / "emqx.conf").read_text().splitlines()
    )
    groups = dict(re.findall(r'"([\w-]+)" \{ strategy = (\w+) \}', body))
    assert groups == {REGISTRY: "hash_clientid", SIGNAL: "hash_clientid"}
