"""The original design, as the benchmark's baseline: Flask-SocketIO on gevent.

One ``GameStateServer`` keeps a ``clients`` dict (Socket.IO session id -> client) and a
``GameState`` per game; a client sends ``client_message`` events (``join``, ``start``,
``end_turn``), the server checks them against the same rules as the hub (two seats,
alternate turns, rounds, a winner after the last round) and on every change
``broadcast_state`` emits the full state to every connected client. A refused message
gets an ``error`` event back.

Several games (the ``venue`` workload): a client that connects with ``?game=NAME`` joins
the Socket.IO room ``NAME`` and plays that game; its game's broadcasts go to that room
only (``join_room`` / ``emit(to=room)``, as Flask-SocketIO's docs show for rooms). A client
without ``game`` is in ``main``, whose broadcasts go to everyone connected, as before.

It runs the way Flask-SocketIO's deployment docs recommend for production: gevent
(``async_mode="gevent"``, the standard library monkey-patched) with gevent-websocket's
``WebSocketHandler`` on gevent's ``pywsgi`` server, which is exactly what
``socketio.run(app)`` builds. Two differences from ``socketio.run``, both for the benchmark:
the listening socket is bound first (``--port 0`` picks a free port, printed on stdout as
``socketio-baseline ready port=N``), and every accepted connection gets TCP_NODELAY
(otherwise Nagle can hold a write for the peer's 40 ms delayed ACK). The state
carries one field the original had no need of, ``version`` (+1 per accepted message), so
the benchmark can tell which broadcast a client has seen.

    python bench/baselines/socketio_server.py --port 0
"""

from gevent import monkey  # type: ignore[import-untyped]

monkey.patch_all()

import argparse  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from flask import Flask, request  # noqa: E402
from flask_socketio import SocketIO, emit, join_room  # type: ignore[import-untyped]  # noqa: E402
from gevent import pywsgi  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # type: ignore[import-untyped]  # noqa: E402

MAX_NAME = 24
MAX_POINTS = 1000
MAX_ROUNDS = 99
DEFAULT_ROUNDS = 5
MAIN = "main"
"""The game of a client that names none: its broadcasts reach every connected client."""
MAX_GAME = 32


@dataclass
class GameState:
    p1_name: str | None = None
    p2_name: str | None = None
    current_round: int = 0
    current_player_id: int = 1
    status: str = "not_started"  # not_started, in_progress, finished
    scores: list[int] = field(default_factory=lambda: [0, 0])
    max_rounds: int = DEFAULT_ROUNDS
    winner_id: int | None = None
    version: int = 0


@dataclass
class Client:
    sid: str
    game: str = MAIN
    player_id: int | None = None


class GameStateServer:
    """The clients and the games; Socket.IO events call the handlers."""

    def __init__(self, socketio: Any) -> None:
        self.socketio = socketio
        self.clients: dict[str, Client] = {}
        self.games: dict[str, GameState] = {MAIN: GameState()}
        socketio.on_event("connect", self.handle_connect)
        socketio.on_event("disconnect", self.handle_disconnect)
        socketio.on_event("client_message", self.handle_client_message)

    def handle_connect(self, *_args: Any) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        game = request.args.get("game", MAIN)[:MAX_GAME] or MAIN
        self.clients[sid] = Client(sid, game)
        if game != MAIN:
            join_room(game)
        state = self.games.setdefault(game, GameState())
        emit("game_state", asdict(state))  # the newcomer sees the table at once

    def handle_disconnect(self, *_args: Any) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        client = self.clients.pop(sid, None)
        if client is None or client.player_id is None:
            return
        state = self.games[client.game]
        if client.player_id == 1:
            state.p1_name = None
        else:
            state.p2_name = None
        if state.status == "in_progress":
            state.status = "not_started"
        self._changed(client.game)

    def broadcast_state(self, game: str = MAIN) -> None:
        """The full state of ``game`` to its room (``main``: to everyone connected)."""
        state = asdict(self.games[game])
        if game == MAIN:
            self.socketio.emit("game_state", state)
        else:
            self.socketio.emit("game_state", state, to=game)

    def handle_client_message(self, data: Any) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        client = self.clients.get(sid)
        if client is None or not isinstance(data, dict):
            self._refuse("invalid_message", "a message is a JSON object")
            return
        kind = data.get("type")
        if kind == "join":
            self._join(client, data)
        elif kind == "start":
            self._start(client, data)
        elif kind == "end_turn":
            self._end_turn(client, data)
        else:
            self._refuse("unknown_message", f"unknown message type {kind!r}")

    # --- the rules ------------------------------------------------------------------------
    def _join(self, client: Client, data: dict[str, Any]) -> None:
        name = data.get("name")
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= MAX_NAME:
            self._refuse("invalid_name", f"a name has 1 to {MAX_NAME} characters")
            return
        if client.player_id is not None:
            self._refuse("already_seated", "you already hold a seat")
            return
        state = self.games[client.game]
        if state.p1_name is None:
            state.p1_name, client.player_id = name.strip(), 1
        elif state.p2_name is None:
            state.p2_name, client.player_id = name.strip(), 2
        else:
            self._refuse("game_full", "both seats are taken")
            return
        self._changed(client.game)

    def _start(self, client: Client, data: dict[str, Any]) -> None:
        state = self.games[client.game]
        rounds = data.get("max_rounds", DEFAULT_ROUNDS)
        if not isinstance(rounds, int) or isinstance(rounds, bool) or not 1 <= rounds <= 99:
            self._refuse("invalid_rounds", f"max_rounds is 1 to {MAX_ROUNDS}")
            return
        if client.player_id is None:
            self._refuse("not_seated", "only the players may start")
            return
        if state.status not in ("not_started", "finished"):
            self._refuse("wrong_status", f"the game is {state.status}")
            return
        if state.p1_name is None or state.p2_name is None:
            self._refuse("not_enough_players", "both seats must be taken")
            return
        state.status, state.current_round, state.current_player_id = "in_progress", 1, 1
        state.scores, state.max_rounds, state.winner_id = [0, 0], rounds, None
        self._changed(client.game)

    def _end_turn(self, client: Client, data: dict[str, Any]) -> None:
        state = self.games[client.game]
        points = data.get("points", 0)
        if not isinstance(points, int) or isinstance(points, bool) or not 0 <= points <= 1000:
            self._refuse("invalid_points", f"points are 0 to {MAX_POINTS}")
            return
        if state.status != "in_progress":
            self._refuse("wrong_status", f"the game is {state.status}")
            return
        if client.player_id != state.current_player_id:
            self._refuse("not_your_turn", f"it is player {state.current_player_id}'s turn")
            return
        state.scores[client.player_id - 1] += points
        if state.current_player_id == 1:
            state.current_player_id = 2
        elif state.current_round < state.max_rounds:
            state.current_player_id, state.current_round = 1, state.current_round + 1
        else:
            p1, p2 = state.scores
            state.status, state.current_player_id = "finished", 1
            state.winner_id = 1 if p1 > p2 else 2 if p2 > p1 else None
        self._changed(client.game)

    def _changed(self, game: str) -> None:
        self.games[game].version += 1
        self.broadcast_state(game)

    def _refuse(self, code: str, message: str) -> None:
        emit("error", {"code": code, "message": message})


class NoDelayServer(pywsgi.WSGIServer):  # type: ignore[misc]
    """gevent's pywsgi server, with TCP_NODELAY on every accepted connection."""

    def handle(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)

    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="gevent", cors_allowed_origins="*")
    GameStateServer(socketio)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(2048)
    server = NoDelayServer(listener, app, handler_class=WebSocketHandler, log=None)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    print(f"socketio-baseline ready port={listener.getsockname()[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
