"""Run the production Mosquitto configuration (``deploy/mosquitto/``) on free loopback ports.

``deploy_broker()`` copies ``deploy/mosquitto/mosquitto.conf`` with only its ports, listen addresses
and file locations rewritten (``/etc/mosquitto/`` and ``/var/lib/mosquitto/`` to a temporary
directory; every listener bound to 127.0.0.1), writes a test CA and a server certificate for
``localhost``/``127.0.0.1``, provisions accounts with ``tools.provision`` (so the password files
and ACLs are exactly what an operator would get: device accounts in ``homecare/``, service
accounts in ``homecare/services/``), and starts ``mosquitto -c`` on it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devices.topics import is_device_id
from tests.procs import die_with_parent
from tools import provision
from tools.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
DEVICE_PORT, SERVICE_PORT, LOOPBACK_PORT = 8883, 8884, 1883


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if found is None:
        raise RuntimeError("mosquitto is not installed (./run test installs it as root)")
    return found


def rewrite_conf(text: str, root: Path, ports: dict[int, int]) -> str:
    """The deploy config with ports, addresses and paths moved under ``root``; nothing else."""
    out: list[str] = []
    for original in text.splitlines():
        m = re.fullmatch(r"listener (\d+)(?: \S+)?", original.strip())
        line = f"listener {ports[int(m.group(1))]} 127.0.0.1" if m else original
        out.append(
            line.replace("/etc/mosquitto/", f"{root}/etc/").replace(
                "/var/lib/mosquitto/", f"{root}/var/"
            )
        )
    rewritten = "\n".join(out) + "\n"
    leftover = [p for p in ("/etc/", "/var/") if re.search(rf"^[^#]*\s{p}", rewritten, re.M)]
    if leftover:
        raise AssertionError(f"the deploy config names a path the test cannot move: {leftover}")
    return rewritten


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def write_test_certs(certs: Path) -> Path:
    """A CA and a server certificate for localhost/127.0.0.1; returns the CA file."""
    certs.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("homecare test CA", ca_key, None, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("localhost", key, ("homecare test CA", ca_key), ca=False)
    pem = serialization.Encoding.PEM
    (certs / "ca.crt").write_bytes(ca.public_bytes(pem))
    (certs / "server.crt").write_bytes(server.public_bytes(pem))
    (certs / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certs / "ca.crt"


@dataclass(frozen=True)
class DeployBroker:
    root: Path
    device_port: int
    service_port: int
    loopback_port: int
    ca_file: Path
    passwords: dict[str, str]
    log_file: Path
    pid: int

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def _wait_ports(ports: list[int], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    pending = list(ports)
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"mosquitto did not open {pending}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
                pending.pop(0)
        except OSError:
            time.sleep(0.05)


@contextlib.contextmanager
def deploy_broker(usernames: tuple[str, ...], prefix: str = "hc/v1") -> Iterator[DeployBroker]:
    """Start the deploy config with ``usernames`` provisioned; yields ports and passwords."""
    binary = mosquitto_binary()
    with tempfile.TemporaryDirectory(prefix="homecare-deploy-mqtt-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)  # the broker drops root
        ports = {DEVICE_PORT: free_port(), SERVICE_PORT: free_port(), LOOPBACK_PORT: free_port()}
        ca_file = write_test_certs(root / "etc" / "certs")
        devices_dir = root / "etc" / "homecare"
        services_dir = devices_dir / "services"  # read by the service and loopback listeners
        (root / "var").mkdir()
        passwords = {
            user: provision.provision(
                user,
                devices_dir if is_device_id(user) else services_dir,
                prefix=prefix,
                iterations=1000,
            ).password
            for user in usernames
        }
        for directory in (devices_dir, services_dir):  # the broker needs both files to start
            directory.mkdir(parents=True, exist_ok=True)
            (directory / provision.PASSWORD_FILE).touch()
            if not (directory / provision.ACL_FILE).exists():
                provision.write_acl(directory, prefix=prefix)
        if os.geteuid() == 0:
            # Run as root, mosquitto drops to the `mosquitto` user before reading these files
            # (in production: `--group mosquitto` and a root:mosquitto 0640 key).
            user = pwd.getpwnam("mosquitto")
            for path in [root / "etc", root / "var", *(root / "etc").rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
            os.chown(root / "var", user.pw_uid, user.pw_gid)
        conf = root / "mosquitto.conf"
        conf.write_text(rewrite_conf(CONF.read_text(), root, ports))
        log_file = root / "mosquitto.log"
        with open(log_file, "wb") as log:
            proc = subprocess.Popen(
                [binary, "-c", str(conf)], stdout=log, stderr=log, preexec_fn=die_with_parent
            )
        try:
            _wait_ports(list(ports.values()), proc, log_file)
            yield DeployBroker(
                root=root,
                device_port=ports[DEVICE_PORT],
                service_port=ports[SERVICE_PORT],
                loopback_port=ports[LOOPBACK_PORT],
                ca_file=ca_file,
                passwords=passwords,
                log_file=log_file,
                pid=proc.pid,
            )
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
