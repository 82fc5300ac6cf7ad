"""Structural checks of ``deploy/``: Kubernetes manifests, the compose file, the Dockerfiles, the
EMQX and Patroni configurations and the systemd units (the latter through
``systemd-analyze verify``). And that deploy runs what the process-level tests ran: the same
process shapes (roles), the same database URL form (both members of the PostgreSQL pair,
``target_session_attrs=read-write``), the same health checks, and the Patroni file
tests/pg_pair.py starts its nodes from.

Every ``HOMECARE_*`` name anywhere in ``deploy/`` must be a real setting of
``services/settings.py``, and the values the manifests give must pass ``settings.load`` (so a typo
or a bad role list fails here, not at 3 a.m. in a crash loop).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml

from devices import credentials
from services import settings as settings_mod
from tests import pg_pair

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
    """A container's literal values; ``$(VAR)`` (Kubernetes' expansion of an earlier variable,
    here a secret's) filled with the variable's name in lower case, as compose's ``${VAR}``."""
    return {
        e["name"]: re.sub(r"\$\((\w+)\)", lambda m: m.group(1).lower(), str(e["value"]))
        for e in c.get("env", [])
        if "value" in e
    }


APP = ("api", "rounds", "probes")  # compose's backend services


def _compose() -> dict[str, Any]:
    (compose,) = _docs(COMPOSE)
    return compose


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's HOMECARE_* values, ``${VAR}`` filled the way .env.example names them."""
    return {
        k: re.sub(r"\$\{(\w+)(:\?[^}]*)?\}", lambda m: m.group(1).lower(), str(v))
        for k, v in service["environment"].items()
        if k.startswith("HOMECARE_")
    }


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
        assert {"PG_PASSWORD", "HOMECARE_MQTT_URL", "HOMECARE_SESSION_SECRET"} <= secrets
        for e in c["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                want = "homecare-pg" if e["name"] == "PG_PASSWORD" else "homecare-secrets"
                assert ref["name"] == want, name
        env.update({k: v for k, v in SECRET_VALUES.items() if k in secrets or k not in env})
        loaded = settings_mod.load({k: v for k, v in env.items() if k.startswith("HOMECARE_")})
        assert loaded.http_port == port
        roles_seen.append(loaded.roles)
    assert sorted(roles_seen) == sorted([("api", "signalling"), ("rounds",), ("probes",)])
    assert {r for roles in roles_seen for r in roles} == set(settings_mod.ROLES)


def test_every_deployment_has_a_disruption_budget_and_services_select_pods() -> None:
    workloads = _of_kind("Deployment") + _of_kind("StatefulSet")
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in workloads]
    ports = [
        {p["name"] for c in d["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        for d in workloads
    ]
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
        selected = [
            named
            for pl, named in zip(labels, ports, strict=True)
            if svc["spec"]["selector"].items() <= pl.items()
        ]
        assert selected, svc["metadata"]["name"]
        for port in svc["spec"]["ports"]:
            assert all(port["targetPort"] in named for named in selected), port


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
    assert {"etcd", "pg-a", "pg-b", "mosquitto", "coturn", "migrate"} | set(APP) <= set(services)
    assert "postgres" not in services  # the pair replaced the single server
    roles = []
    for name in APP:
        filled = _compose_env(services[name])
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


# --- deploy runs what the tests ran (issue 21 item 6) -------------------------------------------

PATRONI = DEPLOY / "patroni"


def _k8s_app_shapes() -> Counter[tuple[str, ...]]:
    """Each Deployment's roles, as many times as its replicas."""
    shapes: Counter[tuple[str, ...]] = Counter()
    for dep in _of_kind("Deployment"):
        roles = _plain_env(_container(dep))["HOMECARE_ROLES"]
        shapes[tuple(roles.split(","))] += dep["spec"]["replicas"]
    return shapes


def _compose_app_shapes() -> Counter[tuple[str, ...]]:
    services = _compose()["services"]
    shapes: Counter[tuple[str, ...]] = Counter()
    for name in APP:
        roles = str(services[name]["environment"]["HOMECARE_ROLES"])
        shapes[tuple(roles.split(","))] += services[name].get("deploy", {}).get("replicas", 1)
    return shapes


def _url_form(url: str) -> tuple[str | None, str, int, dict[str, list[str]]]:
    """(user, database, number of hosts, query) of a multi-host PostgreSQL URL."""
    m = re.fullmatch(r"postgresql://(?:([^:@/]+)(?::[^@/]*)?@)?([^/]+)/(\w+)\?(.*)", url)
    assert m is not None, url
    return m.group(1), m.group(3), len(m.group(2).split(",")), parse_qs(m.group(4))


def test_compose_and_kubernetes_run_the_process_shapes_the_tests_ran() -> None:
    """The failover test's processes (api,signalling; rounds; rounds) and the scale-out test's
    (api,signalling; rounds; probes) are the shapes deploy runs, no other, at least as many of
    each as the failover test ran; compose and Kubernetes run the same."""
    from tests.e2e.test_failover_night import ROLES as FAILOVER
    from tests.e2e.test_scale_out import ROLES as SCALE_OUT

    def shapes(roles: dict[str, str]) -> Counter[tuple[str, ...]]:
        return Counter(tuple(r.split(",")) for r in roles.values())

    compose, k8s = _compose_app_shapes(), _k8s_app_shapes()
    assert set(compose) == set(k8s) == set(shapes(FAILOVER)) | set(shapes(SCALE_OUT))
    for deployed in (compose, k8s):
        assert all(deployed[s] >= n for s, n in shapes(FAILOVER).items()), deployed


def test_compose_and_kubernetes_name_the_pair_as_the_failover_test_does() -> None:
    """Every backend process of compose and Kubernetes (and the migration) connects with the URL
    form tests/pg_pair.py gives the failover test: both members, ``read-write``, the same user
    and database; the hosts are the pair's nodes."""
    pair = pg_pair.PgPair(root=Path("/nonexistent"))
    pair.nodes = [pg_pair.Node("pg0", 1, 2), pg_pair.Node("pg1", 3, 4)]
    tested = _url_form(pair.url)
    assert tested[2:] == (2, {"target_session_attrs": ["read-write"]})
    services = _compose()["services"]
    for name in (*APP, "migrate"):
        url = _compose_env(services[name])["HOMECARE_DATABASE_URL"]
        assert _url_form(url) == tested, name
        hosts = re.search(r"@([^/]+)/", url)
        assert hosts is not None
        assert [h.split(":")[0] for h in hosts.group(1).split(",")] == ["pg-a", "pg-b"]
    (sts,) = [s for s in _of_kind("StatefulSet") if s["metadata"]["name"] == "homecare-pg"]
    pods = [f"{sts['metadata']['name']}-{i}.{sts['spec']['serviceName']}:5432" for i in range(2)]
    assert sts["spec"]["replicas"] == 2
    for doc in _of_kind("Deployment") + _of_kind("Job"):
        c = _container(doc) if doc["kind"] == "Deployment" else doc["spec"]["template"]["spec"]
        c = c if doc["kind"] == "Deployment" else c["containers"][0]
        url = _plain_env(c)["HOMECARE_DATABASE_URL"]
        assert _url_form(url) == tested, doc["metadata"]["name"]
        assert f"@{','.join(pods)}/" in url


def test_health_checks_are_the_ones_the_failover_test_reads() -> None:
    """The service's ``/readyz`` (what the failover test watches go red and green) for every
    backend process; Patroni's ``/health`` for both nodes (the test waits on ``/primary`` and
    ``/sync`` of the same REST API), in compose, Kubernetes and the node's image."""
    import inspect

    from tests.e2e import test_failover_night

    assert '/readyz"' in inspect.getsource(test_failover_night._ready)
    services = _compose()["services"]
    for name in APP:
        assert "/readyz'" in services[name]["healthcheck"]["test"][-1], name
    for dep in _of_kind("Deployment"):
        assert _container(dep)["readinessProbe"]["httpGet"]["path"] == "/readyz"
    health = f"http://127.0.0.1:8008{pg_pair.HEALTH_CHECK}'"
    for name in ("pg-a", "pg-b"):
        assert health in services[name]["healthcheck"]["test"][-1], name
        assert services[name]["environment"]["PATRONI_NAME"] == name
    assert health in (PATRONI / "Dockerfile").read_text()
    (sts,) = [s for s in _of_kind("StatefulSet") if s["metadata"]["name"] == "homecare-pg"]
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"] == {"path": pg_pair.HEALTH_CHECK, "port": "patroni"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "postgresql": 5432,
        "patroni": 8008,
    }
    assert {pg_pair.PRIMARY_CHECK, pg_pair.SYNC_CHECK} <= {"/primary", "/sync"}


def _patroni_env_names(env: list[dict[str, Any]] | dict[str, Any]) -> set[str]:
    names = [e["name"] for e in env] if isinstance(env, list) else list(env)
    return {n for n in names if n.startswith("PATRONI_")}


def test_the_patroni_file_is_the_one_deploy_and_the_tests_run(tmp_path: Path) -> None:
    """deploy/patroni/patroni.yml parses, is synchronous, fails over within the service's retry
    window, and is what tests/pg_pair.py starts its nodes from (the file itself, the test-only
    differences laid over it); every node is given the same per-node variables."""
    from kernel.listen import FAILOVER_RETRY

    shipped = yaml.safe_load(pg_pair.CONFIG.read_text())
    assert pg_pair.CONFIG == PATRONI / "patroni.yml"
    dcs = shipped["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs.get("synchronous_mode_strict", False) is False
    assert FAILOVER_RETRY.give_up_s is not None
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]  # Patroni's rule
    assert dcs["ttl"] + dcs["loop_wait"] < FAILOVER_RETRY.give_up_s
    assert shipped["postgresql"]["authentication"]["superuser"]["username"] == pg_pair.SUPERUSER
    assert "fsync" not in shipped["postgresql"].get("parameters", {})
    post_bootstrap = Path(shipped["bootstrap"]["post_bootstrap"])
    assert (PATRONI / post_bootstrap.name).stat().st_mode & 0o111
    assert f"CREATE DATABASE {pg_pair.DATABASE}" in (PATRONI / post_bootstrap.name).read_text()
    # the image carries exactly these files where the file says
    docker = (PATRONI / "Dockerfile").read_text()
    assert f"COPY patroni.yml {post_bootstrap.name} {post_bootstrap.parent}/" in docker
    assert 'CMD ["/etc/patroni/patroni.yml"]' in docker
    # pg_pair: deploy's file, then the test-only overlay, nothing else
    pair = pg_pair.PgPair(root=tmp_path)
    files = pair.write_config()
    assert files[0].resolve() == pg_pair.CONFIG.resolve()
    assert sorted(pair.config_dir.iterdir()) == files
    overlay = yaml.safe_load(files[1].read_text())
    assert overlay == pg_pair.test_only(tmp_path)
    test_dcs = {**dcs, **overlay["bootstrap"]["dcs"]}
    assert test_dcs["loop_wait"] + 2 * test_dcs["retry_timeout"] <= test_dcs["ttl"]
    assert "synchronous_mode" not in overlay["bootstrap"]["dcs"]
    # the per-node variables: the same names in compose, Kubernetes and the tests
    services = _compose()["services"]
    compose_names = [_patroni_env_names(services[n]["environment"]) for n in ("pg-a", "pg-b")]
    (sts,) = [s for s in _of_kind("StatefulSet") if s["metadata"]["name"] == "homecare-pg"]
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    pair.nodes = [pg_pair.Node("pg0", 1, 2)]
    tested = _patroni_env_names(pair.node_env(pair.nodes[0]))
    required = set(re.findall(r"^#   (PATRONI_\w+)", pg_pair.CONFIG.read_text(), re.M))
    assert required == {
        "PATRONI_NAME",
        "PATRONI_RESTAPI_CONNECT_ADDRESS",
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS",
        "PATRONI_SUPERUSER_PASSWORD",
        "PATRONI_REPLICATION_PASSWORD",
    }
    for names in (*compose_names, _patroni_env_names(c["env"])):
        assert required <= names <= tested, names


_COMPOSE_SERVICE_KEYS = {
    "image", "build", "restart", "read_only", "tmpfs", "environment", "secrets", "depends_on",
    "healthcheck", "command", "ports", "volumes", "network_mode", "hostname", "deploy",
}  # fmt: skip
_HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "disable"}
_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def test_compose_structure(tmp_path: Path) -> None:
    """``docker compose config`` when docker has its compose plugin here; else (and also) a
    structural check without the schema: known keys, every dependency a service (one with a
    health check when it must be healthy), every named volume, secret and build declared."""
    docker = shutil.which("docker")
    has_compose = docker is not None and (
        subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        ).returncode
        == 0
    )
    if docker is not None and has_compose:
        example = (DEPLOY / "compose" / ".env.example").read_text()
        env = tmp_path / ".env"  # every name .env.example lists, filled
        env.write_text("".join(f"{n}=x\n" for n in re.findall(r"^(\w+)=", example, re.M)))
        proc = subprocess.run(
            [docker, "compose", "-f", str(COMPOSE), "--env-file", str(env), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    compose = _compose()
    assert set(compose) <= {"name", "services", "secrets", "volumes"} | {
        k for k in compose if k.startswith("x-")
    }
    services = compose["services"]
    for name, svc in services.items():
        assert set(svc) <= _COMPOSE_SERVICE_KEYS, (name, set(svc) - _COMPOSE_SERVICE_KEYS)
        assert "image" in svc, name
        hc = svc.get("healthcheck", {})
        assert set(hc) <= _HEALTHCHECK_KEYS, name
        if "test" in hc:
            assert hc["test"][0] in {"CMD", "CMD-SHELL"}, name
        for dep, how in svc.get("depends_on", {}).items():
            assert dep in services, (name, dep)
            assert how["condition"] in _CONDITIONS, (name, dep)
            if how["condition"] == "service_healthy":
                assert "test" in services[dep].get("healthcheck", {}), (name, dep)
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], (name, source)
        for secret in svc.get("secrets", []):
            assert secret in compose["secrets"], (name, secret)
        if "build" in svc:
            context = (COMPOSE.parent / svc["build"]["context"]).resolve()
            dockerfile = svc["build"].get("dockerfile", "Dockerfile")
            assert (context / dockerfile).is_file(), name
    # the backend waits for the migration, the migration for both nodes, the nodes for etcd
    assert services["migrate"]["depends_on"] == {
        "pg-a": {"condition": "service_healthy"},
        "pg-b": {"condition": "service_healthy"},
    }
    for name in APP:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    for name in ("pg-a", "pg-b"):
        assert services[name]["depends_on"] == {"etcd": {"condition": "service_healthy"}}
