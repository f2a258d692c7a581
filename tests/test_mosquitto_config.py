"""``hub mosquitto-config``'s files: the first operator in the password file, one ACL
section per user generated from ``hub.auth.acl`` (no bare patterns: Mosquitto warns about
those at every start), and the dynamic security plugin's store, made once and kept."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

from hub.auth import Acl, Identity, Role, UserStore
from hub.mosquitto import DYNSEC_FILE, dynsec_plugin
from hub.protocol import Topics
from hub.protocol.broker_url import parse_broker_url
from tests.support.cli import run_cli


def _configure(data_dir: Path, out: Path) -> None:
    done = run_cli("mosquitto-config", "--out", str(out), "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr


def test_files_follow_the_acl_and_keep_the_plugin_store(tmp_path: Path) -> None:
    data_dir, out = tmp_path / "var", tmp_path / "conf"
    UserStore(data_dir).add("tv", Role.DISPLAY, "pw-tv-0123456789")
    _configure(data_dir, out)

    passwd = (out / "passwd").read_text()
    assert passwd.count("\noperator:$7$") == 1  # made here, before the password file
    assert (data_dir / "operator.txt").exists()

    acl_text = (out / "acl").read_text()
    assert "pattern" not in acl_text
    section = acl_text.split("user tv\n")[1].split("\n\n")[0].splitlines()
    grants = Acl(Topics()).grants(Identity("tv", Role.DISPLAY))
    expected = [f"topic read {t}" for t in grants.read]
    assert section == expected + [f"topic write {t}" for t in grants.publish]

    plugin = dynsec_plugin()
    assert plugin is not None, "Debian's mosquitto ships mosquitto_dynamic_security.so"
    conf = (out / "mosquitto.conf").read_text()
    assert f"plugin {plugin}\n" in conf
    store_path = out / DYNSEC_FILE
    assert f"plugin_opt_config_file {store_path.resolve()}\n" in conf
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o600

    # The service user is the plugin's admin, with the password of service.url.
    store = json.loads(store_path.read_text())
    (service,) = store["clients"]
    url = parse_broker_url((out / "service.url").read_text().strip())
    assert url.password is not None
    salt = base64.b64decode(service["salt"])
    assert len(salt) == 12
    digest = hashlib.pbkdf2_hmac(
        "sha512", url.password.get_secret_value().encode(), salt, service["iterations"]
    )
    assert base64.b64decode(service["password"]) == digest

    # Re-running (after `hub users add`) keeps the store: it holds the phones' clients.
    store_path.write_text(store_path.read_text().replace('"groups"', '"groups" ', 1))
    kept = store_path.read_text()
    _configure(data_dir, out)
    assert store_path.read_text() == kept
    assert parse_broker_url((out / "service.url").read_text().strip()) == url
