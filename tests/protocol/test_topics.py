"""The topic map: builders, subscription filters, parsers and name rules."""

from __future__ import annotations

import pytest

from hub.protocol import CommandTopic, Topics, valid_client_id, valid_game_name

T = Topics()


def test_default_root_builders() -> None:
    assert T.root == "tablehub"
    assert T.status == "tablehub/status"
    assert T.stats == "tablehub/stats"
    assert T.game_state("main") == "tablehub/games/main/state"
    assert T.game_events("main") == "tablehub/games/main/events"
    assert T.game_command("main", "alice") == "tablehub/games/main/cmd/alice"
    assert T.client_reply("alice") == "tablehub/clients/alice/reply"
    assert T.client_presence("alice") == "tablehub/clients/alice/presence"


def test_filters() -> None:
    assert T.all == "tablehub/#"
    assert T.command_filter == "tablehub/games/+/cmd/+"
    assert T.presence_filter == "tablehub/clients/+/presence"


def test_multi_level_root() -> None:
    topics = Topics("site-1/table_2")
    assert topics.status == "site-1/table_2/status"
    assert topics.game_command("g", "c") == "site-1/table_2/games/g/cmd/c"
    assert topics.parse_command("site-1/table_2/games/g/cmd/c") == CommandTopic("g", "c")
    assert topics.parse_command("tablehub/games/g/cmd/c") is None
    assert topics.parse_presence("site-1/table_2/clients/c/presence") == "c"
    assert topics.parse_game_state("site-1/table_2/games/g/state") == "g"


@pytest.mark.parametrize(
    "root",
    [
        "",
        "/",
        "/tablehub",
        "tablehub/",
        "a//b",
        "a/+",
        "+",
        "#",
        "a/#",
        "a b",
        "$SYS",
        "tablé",
        "a\x00",
    ],
)
def test_invalid_roots(root: str) -> None:
    with pytest.raises(ValueError, match="invalid topic root"):
        Topics(root)


@pytest.mark.parametrize("root", ["tablehub", "a", "A_b-9", "a/b/c"])
def test_valid_roots(root: str) -> None:
    assert Topics(root).root == root


# --- parse_command ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("game", "client_id"),
    [
        ("main", "alice"),
        ("g-2_x", "Alice.Phone-1_x"),
        ("a" * 32, "c" * 64),
        ("0", "9"),
    ],
)
def test_parse_command_round_trip(game: str, client_id: str) -> None:
    parsed = T.parse_command(T.game_command(game, client_id))
    assert parsed == CommandTopic(game=game, client_id=client_id)


@pytest.mark.parametrize("game", ["Main", "no!", "x" * 40, "_x", "é"])
def test_parse_command_returns_any_nonempty_game(game: str) -> None:
    """An invalid game name still parses, so the sender can be told ``unknown_game``."""
    assert T.parse_command(f"tablehub/games/{game}/cmd/alice") == CommandTopic(game, "alice")


@pytest.mark.parametrize(
    "topic",
    [
        "tablehub/games/main/cmd",
        "tablehub/games/main/cmd/",
        "tablehub/games/main/cmd/alice/extra",
        "tablehub/games//cmd/alice",
        "tablehub/games/main/command/alice",
        "tablehub/game/main/cmd/alice",
        "tablehub/games/main/state",
        "tablehub/clients/alice/presence",
        "tablehub2/games/main/cmd/alice",
        "other/games/main/cmd/alice",
        "games/main/cmd/alice",
        "/tablehub/games/main/cmd/alice",
        "tablehub//games/main/cmd/alice",
        "tablehub",
        "tablehub/",
        "",
        # client ids must be valid: they name the reply topic
        "tablehub/games/main/cmd/-alice",
        "tablehub/games/main/cmd/.alice",
        "tablehub/games/main/cmd/al ice",
        "tablehub/games/main/cmd/al+ice",
        "tablehub/games/main/cmd/al#ice",
        "tablehub/games/main/cmd/alicé",
        "tablehub/games/main/cmd/" + "c" * 65,
        "tablehub/games/main/cmd/+",
        "tablehub/games/main/cmd/#",
    ],
)
def test_parse_command_rejects(topic: str) -> None:
    assert T.parse_command(topic) is None


# --- parse_presence / parse_game_state --------------------------------------------------


def test_parse_presence_round_trip() -> None:
    assert T.parse_presence(T.client_presence("bob.2")) == "bob.2"


@pytest.mark.parametrize(
    "topic",
    [
        "tablehub/clients/bob/reply",
        "tablehub/clients/bob/presence/x",
        "tablehub/clients//presence",
        "tablehub/clients/-bob/presence",
        "tablehub/clients/" + "b" * 65 + "/presence",
        "tablehub/client/bob/presence",
        "other/clients/bob/presence",
        "tablehub/games/bob/presence",
    ],
)
def test_parse_presence_rejects(topic: str) -> None:
    assert T.parse_presence(topic) is None


def test_parse_game_state_round_trip() -> None:
    assert T.parse_game_state(T.game_state("main")) == "main"


@pytest.mark.parametrize(
    "topic",
    [
        "tablehub/games/Main/state",
        "tablehub/games//state",
        "tablehub/games/" + "g" * 33 + "/state",
        "tablehub/games/main/events",
        "tablehub/games/main/state/x",
        "tablehub/clients/main/state",
        "other/games/main/state",
    ],
)
def test_parse_game_state_rejects(topic: str) -> None:
    assert T.parse_game_state(topic) is None


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("main", True),
        ("a", True),
        ("0", True),
        ("g_1-x", True),
        ("a" * 32, True),
        ("a" * 33, False),
        ("", False),
        ("Main", False),
        ("_main", False),
        ("-main", False),
        ("ma in", False),
        ("ma/in", False),
        ("ma.in", False),
        ("main\n", False),
        ("mäin", False),
    ],
)
def test_valid_game_name(name: str, valid: bool) -> None:
    assert valid_game_name(name) is valid


@pytest.mark.parametrize(
    ("client_id", "valid"),
    [
        ("alice", True),
        ("Alice.Phone_1-2", True),
        ("9", True),
        ("c" * 64, True),
        ("c" * 65, False),
        ("", False),
        (".alice", False),
        ("_alice", False),
        ("-alice", False),
        ("al ice", False),
        ("al/ice", False),
        ("al+ice", False),
        ("al#ice", False),
        ("alice\n", False),
        ("alicé", False),
    ],
)
def test_valid_client_id(client_id: str, valid: bool) -> None:
    assert valid_client_id(client_id) is valid
