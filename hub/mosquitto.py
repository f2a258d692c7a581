"""``hub mosquitto-config``: the hub's users and ACL rules as Mosquitto files.

Writes into OUT: ``passwd`` (mosquitto_passwd ``$7$`` hashes of the hub's users and its
``service`` user), ``acl`` (each user's rules from ``hub.auth.acl``), ``mosquitto.conf``
(a listener using both, and Mosquitto's dynamic security plugin),
``dynsec/dynamic-security.json`` (the plugin's store: the service user as its admin; the
web bridge adds one client and role per phone there, see ``hub.link.dynsec``) and
``service.url`` (0600: the ``--broker`` URL for the state service and the web bridge).
The service's password and the plugin's store are made once and kept: re-run it after
``hub users add`` and send mosquitto SIGHUP. Like ``hub serve``, it creates the first
operator if there is none. Mosquitto cannot express "anything outside R" for operators:
there they publish only their own command and presence topics.

Mosquitto 2.0.11 rewrites the plugin's store in place at every change (its ``.new`` path
is cut short; fixed upstream in eclipse/mosquitto e0d8ef20, 2.0.16): should a crash
mid-write leave it unreadable, delete it and run this again (phones then join again).

With ``per_listener_settings false`` the plugin is asked first at every login and ACL
check, and answers only for its own clients; users of ``passwd`` fall through to the
password and ACL files (Mosquitto 2.0.11, ``src/security.c``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import secrets
import sys
import sysconfig
from pathlib import Path

from hub.auth import SERVICE_USER, Acl, Identity, Role, UserStore
from hub.auth.acl import BROKER_TOPICS
from hub.auth.passwords import MOSQUITTO_ITERATIONS, mosquitto_hash, new_password
from hub.files import write_atomic
from hub.link.dynsec import CONTROL_TOPIC
from hub.protocol.broker_url import parse_broker_url
from hub.settings import HubSettings

__all__ = ["acl_file", "dynsec_plugin", "write_mosquitto_config"]

DYNSEC_FILE = "dynsec/dynamic-security.json"
ADMIN_ROLE = "tablehub-dynsec-admin"
_PLUGIN = "mosquitto_dynamic_security.so"


def dynsec_plugin() -> Path | None:
    """Mosquitto's dynamic security plugin, where Debian (any architecture) or a source
    build installs it; None if it is not there."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    candidates = [Path("/usr/lib", multiarch, _PLUGIN), Path("/usr/local/lib", _PLUGIN)]
    candidates += sorted(Path("/usr/lib").glob(f"*/{_PLUGIN}"))
    return next((path for path in candidates if path.is_file()), None)


def acl_file(settings: HubSettings, users: UserStore) -> str:
    """One section per user: the service owns the root, operators read everything, the
    others get exactly their ``Acl.grants``. Players with sessions are the plugin's."""
    acl, root = Acl(settings.topics), settings.topics.root
    lines = [
        "# tablehub ACL (hub mosquitto-config), generated from hub/auth/acl.py",
        "# (Mosquitto's ACL cannot refuse the retain flag on commands: the hub ignores and",
        "# clears retained commands instead)",
        f"user {SERVICE_USER}",
        f"topic readwrite {root}/#",
    ]
    for user in users.list():
        lines += ["", f"user {user.name}"]
        if user.role is Role.OPERATOR:
            lines += ["topic read #", f"topic read {BROKER_TOPICS}/#"]
            lines += [f"topic write {topic}" for topic in acl.own_topics(user.name)]
        else:
            grants = acl.grants(Identity(user.name, user.role))
            lines += [f"topic read {topic}" for topic in grants.read]
            lines += [f"topic write {topic}" for topic in grants.publish]
    return "\n".join(lines) + "\n"


def dynsec_store(service_password: str) -> str:
    """The plugin's first store: the service user, allowed to send it commands."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", service_password.encode(), salt, MOSQUITTO_ITERATIONS)
    control = f"{CONTROL_TOPIC.rsplit('/', 1)[0]}/#"
    kinds = ("publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern")
    store = {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": False,
        },
        "clients": [
            {
                "username": SERVICE_USER,
                "textname": "tablehub: state service and web bridge",
                "password": base64.b64encode(digest).decode(),
                "salt": base64.b64encode(salt).decode(),
                "iterations": MOSQUITTO_ITERATIONS,
                "roles": [{"rolename": ADMIN_ROLE}],
            }
        ],
        "groups": [],
        "roles": [
            {
                "rolename": ADMIN_ROLE,
                "textdescription": "may manage clients and roles (tablehub's player seats)",
                "acls": [
                    {"acltype": kind, "topic": control, "priority": 0, "allow": True}
                    for kind in kinds
                ],
            }
        ],
    }
    return json.dumps(store, indent=2) + "\n"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    write_atomic(path, text, mode=mode)
    _give_to_mosquitto(path)


def _give_to_mosquitto(path: Path) -> None:
    """Started as root, mosquitto drops to the ``mosquitto`` user: let it read its files."""
    if os.geteuid() != 0:
        return
    try:
        account = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    os.chown(path, account.pw_uid, account.pw_gid)


def _service_password(out: Path) -> str:
    """Keep the service's password across runs, so re-running after ``hub users add``
    (then SIGHUP to mosquitto) does not lock out a running hub."""
    try:
        url = parse_broker_url((out / "service.url").read_text().strip())
    except (OSError, ValueError):
        return new_password()
    return url.password.get_secret_value() if url.password else new_password()


def _write_dynsec_store(out: Path, service_password: str, *, keep: bool) -> Path:
    """The plugin's store, in a directory of its own that Mosquitto may write (it saves
    the store as ``.new`` and renames it at every change). Kept if it exists: it holds the
    phones' clients."""
    path = out / DYNSEC_FILE
    path.parent.mkdir(mode=0o700, exist_ok=True)
    _give_to_mosquitto(path.parent)
    if not (keep and path.exists()):
        _write(path, dynsec_store(service_password), 0o600)
    return path


def _config(settings: HubSettings, out: Path, port: int, plugin: Path | None) -> str:
    text = (
        "# tablehub: include from your mosquitto.conf or run mosquitto -c this file\n"
        "per_listener_settings false\n"
        f"listener {port} {settings.bind}\n"
        "allow_anonymous false\n"
        "# Nagle off: with QoS 1 both ways it holds every reply back ~40 ms (delayed ACK)\n"
        "set_tcp_nodelay true\n"
        f"password_file {(out / 'passwd').resolve()}\n"
        f"acl_file {(out / 'acl').resolve()}\n"
        "max_queued_messages 0\n"
    )
    if plugin is not None:
        text += (
            "# phones: one client and role per player session, made by the web bridge\n"
            f"plugin {plugin}\n"
            f"plugin_opt_config_file {(out / DYNSEC_FILE).resolve()}\n"
        )
    return text


def write_mosquitto_config(settings: HubSettings, out: Path, *, port: int = 1883) -> int:
    from hub.app import ensure_operator  # noqa: PLC0415 - the web stack only here

    users = UserStore(settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_operator(users, settings.data_dir)
    out.mkdir(parents=True, exist_ok=True)
    kept = (out / "service.url").exists()
    service_password = _service_password(out)
    passwd = [f"{SERVICE_USER}:{mosquitto_hash(service_password)}"]
    passwd += [f"{u.name}:{u.mosquitto_hash}" for u in users.list()]
    _write(out / "passwd", "\n".join(passwd) + "\n", 0o600)
    _write(out / "acl", acl_file(settings, users))
    plugin = dynsec_plugin()
    if plugin is not None:
        _write_dynsec_store(out, service_password, keep=kept)
    _write(out / "mosquitto.conf", _config(settings, out, port, plugin))
    _write(
        out / "service.url", f"mqtt://{SERVICE_USER}:{service_password}@127.0.0.1:{port}\n", 0o600
    )
    print(f"wrote passwd, acl, mosquitto.conf, {DYNSEC_FILE} and service.url to {out}")
    if plugin is None:
        print(
            f"hub: {_PLUGIN} not found: phones cannot take seats on this Mosquitto"
            " (Debian's mosquitto 2.0 package ships it)",
            file=sys.stderr,
        )
    print(f'run the hub with: hub serve --broker "$(cat {out / "service.url"})"')
    return 0
