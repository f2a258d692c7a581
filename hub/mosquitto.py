"""``hub mosquitto-config``: the hub's users and ACL rules as Mosquitto files.

Writes into OUT: ``passwd`` (mosquitto_passwd ``$7$`` hashes), ``acl`` (the rules of
``hub.auth.acl`` as Mosquitto patterns with %u), ``mosquitto.conf`` (a listener using both),
and ``service.url`` (0600: the ``--broker`` URL for the state service, with the internal
``service`` user's password, made once and kept). Re-run it after ``hub users add`` and
send mosquitto SIGHUP to reload. Mosquitto cannot express "anything outside R"
for operators: there they publish only their own command and presence topics.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from hub.auth import SERVICE_USER, Role, UserStore
from hub.auth.acl import BROKER_TOPICS
from hub.auth.passwords import mosquitto_hash, new_password
from hub.files import write_atomic
from hub.protocol import Topics
from hub.protocol.broker_url import parse_broker_url
from hub.settings import HubSettings

__all__ = ["acl_file", "write_mosquitto_config"]


def acl_file(topics: Topics, users: UserStore) -> str:
    r = topics.root
    lines = [
        "# tablehub ACL (hub mosquitto-config); mirrors hub/auth/acl.py",
        "# everyone authenticated: read the public topics, write own commands and presence",
        "# (Mosquitto's ACL cannot refuse the retain flag on commands: the hub ignores and",
        "# clears retained commands instead)",
        f"pattern read {topics.status}",
        f"pattern read {topics.stats}",
        f"pattern read {r}/games/+/state",
        f"pattern read {r}/games/+/events",
        f"pattern read {topics.presence_filter}",
        f"pattern read {r}/clients/%u/reply",
        f"pattern write {r}/games/+/cmd/%u",
        f"pattern write {r}/clients/%u/presence",
        "",
        f"user {SERVICE_USER}",
        f"topic readwrite {r}/#",
    ]
    for user in users.list():
        if user.role is Role.OPERATOR:
            lines += ["", f"user {user.name}", "topic read #", f"topic read {BROKER_TOPICS}/#"]
        elif user.role is Role.DISPLAY:
            lines += ["", f"user {user.name}", f"topic read {r}/games/+/join"]
    return "\n".join(lines) + "\n"


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


def write_mosquitto_config(settings: HubSettings, out: Path, *, port: int = 1883) -> int:
    users = UserStore(settings.data_dir)
    out.mkdir(parents=True, exist_ok=True)
    service_password = _service_password(out)
    passwd = [f"{SERVICE_USER}:{mosquitto_hash(service_password)}"]
    passwd += [f"{u.name}:{u.mosquitto_hash}" for u in users.list()]
    _write(out / "passwd", "\n".join(passwd) + "\n", 0o600)
    _write(out / "acl", acl_file(settings.topics, users))
    _write(
        out / "mosquitto.conf",
        "# tablehub: include from your mosquitto.conf or run mosquitto -c this file\n"
        "per_listener_settings false\n"
        f"listener {port} {settings.bind}\n"
        "allow_anonymous false\n"
        "# Nagle off: with QoS 1 both ways it holds every reply back ~40 ms (delayed ACK)\n"
        "set_tcp_nodelay true\n"
        f"password_file {(out / 'passwd').resolve()}\n"
        f"acl_file {(out / 'acl').resolve()}\n"
        "max_queued_messages 0\n",
    )
    _write(
        out / "service.url", f"mqtt://{SERVICE_USER}:{service_password}@127.0.0.1:{port}\n", 0o600
    )
    print(f"wrote passwd, acl, mosquitto.conf and service.url to {out}")
    print(f'run the hub with: hub serve --broker "$(cat {out / "service.url"})"')
    return 0
