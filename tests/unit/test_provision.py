"""`homecare devices provision|revoke|acl` on a temporary directory."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from devices import credentials
from tools import cli, provision


def _hash_of(directory: Path, user: str) -> credentials.PasswordHash:
    text = (directory / "passwd").read_text()
    return credentials.PasswordHash.decode(credentials.parse_password_file(text)[user])


def test_provision_stores_only_a_hash_of_a_strong_password(tmp_path: Path) -> None:
    issued = provision.provision("cam-1", tmp_path)
    assert len(issued.password) == 32
    assert issued.password not in repr(issued)
    assert _hash_of(tmp_path, "cam-1").verify(issued.password)
    for path in tmp_path.iterdir():
        assert issued.password not in path.read_text()
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o640
    acl = (tmp_path / "acl").read_text()
    assert "pattern readwrite hc/v1/dev/%u/#" in acl
    assert not (tmp_path / "emqx-users.csv").exists()


def test_second_provision_is_refused_and_rotate_replaces(tmp_path: Path) -> None:
    first = provision.provision("cam-1", tmp_path)
    other = provision.provision("cam-2", tmp_path)
    with pytest.raises(provision.AlreadyProvisioned):
        provision.provision("cam-1", tmp_path)
    assert _hash_of(tmp_path, "cam-1").verify(first.password)
    second = provision.provision("cam-1", tmp_path, rotate=True)
    assert second.rotated
    assert second.password != first.password
    assert _hash_of(tmp_path, "cam-1").verify(second.password)
    assert not _hash_of(tmp_path, "cam-1").verify(first.password)
    assert _hash_of(tmp_path, "cam-2").verify(other.password)


def test_existing_mode_is_kept_and_acl_is_not_overwritten(tmp_path: Path) -> None:
    provision.provision("cam-1", tmp_path)
    os.chmod(tmp_path / "passwd", 0o600)
    (tmp_path / "acl").write_text("# hand-edited\n")
    provision.provision("cam-2", tmp_path)
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "acl").read_text() == "# hand-edited\n"
    provision.write_acl(tmp_path, prefix="site/hc/v1")
    assert "pattern readwrite site/hc/v1/dev/%u/#" in (tmp_path / "acl").read_text()


def test_revoke_removes_the_line(tmp_path: Path) -> None:
    provision.provision("cam-1", tmp_path, emqx=True)
    provision.provision("cam-2", tmp_path, emqx=True)
    provision.revoke("cam-1", tmp_path)
    assert credentials.parse_password_file((tmp_path / "passwd").read_text()).keys() == {"cam-2"}
    rows = (tmp_path / "emqx-users.csv").read_text().splitlines()
    assert rows[0] == credentials.EMQX_CSV_HEADER
    assert [r.split(",")[0] for r in rows[1:]] == ["cam-2"]
    with pytest.raises(provision.NotProvisioned):
        provision.revoke("cam-1", tmp_path)


def test_concurrent_provisioning_loses_nothing(tmp_path: Path) -> None:
    ids = [f"cam-{i}" for i in range(16)]
    passwords: dict[str, str] = {}

    def one(device_id: str) -> None:
        passwords[device_id] = provision.provision(device_id, tmp_path, iterations=10).password

    threads = [threading.Thread(target=one, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for device_id in ids:
        assert _hash_of(tmp_path, device_id).verify(passwords[device_id])


def test_cli_prints_the_password_once_and_exits_by_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["devices", "provision", "cam-7", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert lines["username"] == "cam-7"
    assert _hash_of(tmp_path, "cam-7").verify(lines["password"])
    assert out.count(lines["password"]) == 1

    assert cli.main(["devices", "provision", "cam-7", "--out", str(tmp_path)]) == 1
    assert "already has broker credentials" in capsys.readouterr().err
    assert cli.main(["devices", "provision", "Cam 7", "--out", str(tmp_path)]) == 2
    assert cli.main(["devices", "provision", "homecare_backend", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert cli.main(["devices", "revoke", "cam-7", "--out", str(tmp_path)]) == 0
    assert cli.main(["devices", "revoke", "cam-7", "--out", str(tmp_path)]) == 1
    missing = tmp_path / "nope.template"
    assert cli.main(["devices", "acl", "--out", str(tmp_path), "--template", str(missing)]) == 2
