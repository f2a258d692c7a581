"""The ``hub`` command line: serve, web-bridge, users, sessions, mosquitto-config,
nats-config, history, state."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from hub import __version__
from hub.auth import AuthError, Role, Users
from hub.auth.passwords import new_password
from hub.journals import hub_journal, journal_place
from hub.mosquitto import write_mosquitto_config
from hub.nats import DEFAULT_BASE_PORT, NatsError
from hub.protocol import encode, valid_game_name
from hub.settings import HubSettings, SettingsError, load_settings
from hub.state.errors import StateError
from hub.state.journal import JournalEntry, JournalReader
from hub.state.model import GameState
from hub.state.recovery import replay
from hub.state.view import snapshot
from hub.web import auth_stores

__all__ = ["main", "web_bridge_main"]

_LOGGER = logging.getLogger("hub")
T = TypeVar("T")
_NODE_HELP = (
    "the node of the broker URL this process stands beside, from 1: it connects there first"
    " (default 1)"
)
_PUBLIC_URL_HELP = "the address phones open, http://HOST:PORT (default: this machine's LAN address)"


def _users_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
    cluster: Callable[[argparse.ArgumentParser], None],
) -> None:
    users_help = "manage users: operators, displays and players"
    users = commands.add_parser("users", help=users_help, description=users_help)
    user_commands = users.add_subparsers(dest="users_command", required=True)
    add = user_commands.add_parser("add", help="add a user (prints a random password)")
    common(add)
    cluster(add)
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["operator", "display", "player"])
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    remove = user_commands.add_parser("remove", help="remove a user")
    common(remove)
    cluster(remove)
    remove.add_argument("name")
    listing = user_commands.add_parser("list", help="list users and roles")
    common(listing)
    cluster(listing)


def _sessions_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
    cluster: Callable[[argparse.ArgumentParser], None],
) -> None:
    sessions = commands.add_parser("sessions", help="list or revoke phones' player sessions")
    session_commands = sessions.add_subparsers(dest="sessions_command", required=True)
    listing = session_commands.add_parser("list", help="the live sessions (all games)")
    common(listing)
    cluster(listing)
    listing.add_argument("--game", help="only this game's")
    revoke = session_commands.add_parser(
        "revoke", help="end sessions now (a running hub closes their connections)"
    )
    common(revoke)
    cluster(revoke)
    revoke.add_argument("client_ids", nargs="+", metavar="CLIENT_ID")


def _config_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``mosquitto-config`` and ``nats-config``: an external broker's files."""
    mosq = commands.add_parser(
        "mosquitto-config", help="write password, ACL and config files for Mosquitto"
    )
    common(mosq)
    mosq.add_argument("--out", type=Path, required=True, help="directory to write into")
    mosq.add_argument("--topic-root", help="topic root R (default tablehub)")
    mosq.add_argument("--bind", help="address Mosquitto listens on (default 0.0.0.0)")
    mosq.add_argument("--port", type=int, default=1883, help="port Mosquitto listens on")

    nats_config = commands.add_parser(
        "nats-config", help="write the configs of a NATS cluster the hub runs on"
    )
    nats_config.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    nats_config.add_argument("--out", type=Path, required=True, help="directory to write into")
    nats_config.add_argument(
        "--bind",
        default="127.0.0.1",
        help="address the nodes listen on, or one per node: H1,H2,H3 (default 127.0.0.1)",
    )
    nats_config.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        help=f"node K listens from BASE + 10*(K-1) on (default {DEFAULT_BASE_PORT}, 0 = random)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="tablehub: the game's MQTT hub")
    parser.add_argument("--version", action="version", version=f"tablehub {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config", type=Path, help="TOML config file (default config/hub.toml)")
        sub.add_argument("--data-dir", type=Path, help="journal directory (default ./var)")

    def cluster(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--broker",
            help="a NATS cluster's service URL (cluster.json's service_url): its users and"
            " sessions live there (default: the data dir's)",
        )

    serve = commands.add_parser("serve", help="run the broker and the state service")
    common(serve)
    serve.add_argument("--bind", help="listen address (default 0.0.0.0)")
    serve.add_argument("--mqtt-port", type=int, help="MQTT port (default 1883, 0 = any free)")
    serve.add_argument("--http-port", type=int, help="HTTP port (default 8080, 0 = any free)")
    serve.add_argument("--topic-root", help="topic root R (default tablehub)")
    serve.add_argument("--public-url", help=_PUBLIC_URL_HELP)
    serve.add_argument(
        "--broker", help="use an external broker, mqtt://USER:PASS@HOST:PORT (default: embedded)"
    )
    serve.add_argument("--broker-node", type=int, help=_NODE_HELP)
    serve.add_argument(
        "--instance", help="this service's name in R/status (default: host name and pid)"
    )
    serve.add_argument(
        "--command-rate-limit", type=float, help="commands/s per client (default 20, 0 = off)"
    )

    bridge = commands.add_parser(
        "web-bridge", help="run the web bridge alone, beside `hub serve --broker`"
    )
    common(bridge)
    bridge.add_argument("--bind", help="listen address (default 0.0.0.0)")
    bridge.add_argument("--http-port", type=int, help="HTTP port (default 8080, 0 = any free)")
    bridge.add_argument("--topic-root", help="topic root R (default tablehub)")
    bridge.add_argument("--public-url", help=_PUBLIC_URL_HELP)
    bridge.add_argument(
        "--broker", required=True, help="the hub's broker, mqtt://USER:PASS@HOST:PORT"
    )
    bridge.add_argument("--broker-node", type=int, help=_NODE_HELP)

    _users_parser(commands, common, cluster)
    _sessions_parser(commands, common, cluster)

    _config_parsers(commands, common)

    journal_help = "the hub's --broker URL: on a NATS cluster, read its replicated journal"
    history = commands.add_parser("history", help="print a game's journal")
    common(history)
    history.add_argument("--broker", help=journal_help)
    history.add_argument("--game", default="main")
    history.add_argument("--json", action="store_true", help="one JSON event per line")
    history.add_argument("--after", type=int, default=0, help="only versions after this")
    history.add_argument("--limit", type=int, help="at most this many entries")

    state = commands.add_parser("state", help="print a game's current snapshot")
    common(state)
    state.add_argument("--broker", help=journal_help)
    state.add_argument("--game", default="main")
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if level != "DEBUG":  # amqtt logs every connection at INFO
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)


def _users(settings: HubSettings, args: argparse.Namespace) -> int:
    with auth_stores(settings) as stores:
        return _user_command(stores.users, args)


def _user_command(store: Users, args: argparse.Namespace) -> int:
    if args.users_command == "list":
        for user in store.list():
            print(f"{user.name:<24} {user.role:<9} created {user.created_at}")
        return 0
    if args.users_command == "remove":
        store.remove(args.name)
        print(f"removed {args.name}")
        return 0
    generated = not args.password_stdin
    password = new_password() if generated else sys.stdin.readline().rstrip("\n")
    user = store.add(args.name, Role(args.role), password)
    print(f"added {user.role} {user.name!r}")
    if generated:
        print(f"password: {password}")
    return 0


def _sessions(settings: HubSettings, args: argparse.Namespace) -> int:
    with auth_stores(settings) as stores:
        store = stores.sessions
        if args.sessions_command == "list":
            for session in store.live(game=args.game):
                expires = session.expires_at.isoformat(timespec="seconds")
                print(
                    f"{session.client_id:<16} {session.game:<12} {session.name:<24}"
                    f" {session.address or '-':<15} expires {expires}"
                )
            return 0
        missing = [cid for cid in args.client_ids if store.revoke(cid) is None]
    for client_id in args.client_ids:
        if client_id not in missing:
            print(f"revoked {client_id}")
    for client_id in missing:
        print(f"hub: no live session {client_id!r}", file=sys.stderr)
    return 1 if missing else 0


def _nats_config(args: argparse.Namespace) -> int:
    from hub.nats.config import CLUSTER_FILE, write_cluster  # noqa: PLC0415 - nkeys only here

    try:
        cluster = write_cluster(
            args.out, count=args.nodes, bind=args.bind, base_port=args.base_port
        )
    except ValueError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    print(f"wrote {len(cluster.nodes)} node configs, callout.json and {CLUSTER_FILE} to {out}")
    for node in cluster.nodes:
        print(f"  {node.name}: nats-server -c {node.config}  (MQTT {node.mqtt})")
    print(f'run the hub with: hub serve --broker "$(jq -r .service_url {out / CLUSTER_FILE})"')
    return 0


async def _read_history(journal: JournalReader, args: argparse.Namespace) -> list[JournalEntry]:
    return await journal.entries(args.game, after=args.after, limit=args.limit)


async def _read_state(journal: JournalReader, game: str) -> tuple[GameState, int] | None:
    base = await journal.latest_snapshot(game)
    if base is None:
        return None
    state = replay(base, await journal.entries(game, after=base.version))
    return state, await journal.epoch()


async def _with_journal(settings: HubSettings, read: Callable[[JournalReader], Awaitable[T]]) -> T:
    async with hub_journal(settings, read_only=True) as journal:
        return await read(journal)


def _history(settings: HubSettings, args: argparse.Namespace) -> int:
    entries = asyncio.run(_with_journal(settings, lambda j: _read_history(j, args)))
    for entry in entries:
        if args.json:
            print(encode(entry.event).decode())
        else:
            args_text = " ".join(
                f"{k}={v}"
                for k, v in entry.command.model_dump(
                    exclude={"type", "request_id", "expected_version"}, exclude_none=True
                ).items()
            )
            at = entry.at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            print(
                f"{entry.version:>6}  {at}  {entry.actor.client_id:<16}"
                f" {entry.command.type:<9} {args_text}".rstrip()
            )
    return 0


def _state(settings: HubSettings, args: argparse.Namespace) -> int:
    found = asyncio.run(_with_journal(settings, lambda j: _read_state(j, args.game)))
    if found is None:
        print(f"hub: no game {args.game!r} in {journal_place(settings)}", file=sys.stderr)
        return 1
    state, epoch = found
    print(encode(snapshot(state, epoch=epoch, online={})).decode())
    return 0


def web_bridge_main() -> int:
    """The ``web-bridge`` command: ``hub web-bridge`` under its own name."""
    return main(["web-bridge", *sys.argv[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "nats-config":
        return _nats_config(args)
    overrides = {"data_dir": args.data_dir}
    if args.command == "serve":
        overrides |= {
            "bind": args.bind,
            "mqtt_port": args.mqtt_port,
            "http_port": args.http_port,
            "public_url": args.public_url,
            "topic_root": args.topic_root,
            "broker": args.broker,
            "broker_node": args.broker_node,
            "command_rate_limit": args.command_rate_limit,
            "instance": args.instance,
        }
    elif args.command == "web-bridge":
        overrides |= {
            "bind": args.bind,
            "http_port": args.http_port,
            "public_url": args.public_url,
            "topic_root": args.topic_root,
            "broker": args.broker,
            "broker_node": args.broker_node,
        }
    elif args.command in ("users", "sessions", "history", "state"):
        overrides |= {"broker": args.broker}
    elif args.command == "mosquitto-config":
        overrides |= {"topic_root": args.topic_root, "bind": args.bind}
    try:
        settings = load_settings(args.config, **overrides)
    except SettingsError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    if args.command in ("history", "state") and not valid_game_name(args.game):
        print(f"hub: invalid game name {args.game!r}", file=sys.stderr)
        return 2
    try:
        if args.command == "serve":
            from hub.app import serve  # noqa: PLC0415 - keep amqtt out of the other commands

            asyncio.run(serve(settings))
            return 0
        if args.command == "web-bridge":
            from hub.bridge_app import serve_bridge  # noqa: PLC0415

            asyncio.run(serve_bridge(settings))
            return 0
        if args.command == "users":
            return _users(settings, args)
        if args.command == "sessions":
            return _sessions(settings, args)
        if args.command == "mosquitto-config":
            return write_mosquitto_config(settings, args.out, port=args.port)
        if args.command == "history":
            return _history(settings, args)
        return _state(settings, args)
    except (StateError, AuthError, NatsError, OSError) as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 1
