// The phone page: join the table with its code, take a seat or watch, play.
// The session (MQTT credentials from POST /api/sessions) is kept in localStorage, so a
// reload, a sleeping phone or a lost Wi-Fi comes back to the same seat.

import { Link, describeStatus, element, errorInWords, parseJson, topics } from "./tablehub.js";

const params = new URLSearchParams(location.search);
const game = params.get("game") || "main";
const storageKey = `tablehub.session.${game}`;
const $ = (id) => document.getElementById(id);

let session = null;
let link = null;
let wire = null;
let snapshot = null;
let busy = false;
let points = 0;

function loadSession() {
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey));
    if (saved && Date.parse(saved.expires_at) > Date.now()) return saved;
  } catch {
    // unreadable: join again
  }
  localStorage.removeItem(storageKey);
  return null;
}

function showConnection(state) {
  const words = {
    connecting: "connecting…",
    online: "connected",
    reconnecting: "reconnecting…",
    refused: "signed out",
  };
  const pill = $("connection");
  pill.textContent = words[state];
  pill.dataset.state = state;
  if (state === "refused") {
    forgetSession("Your pass for this table has expired. Join again with the code shown at the table.");
  }
}

function showError(text) {
  $("message").textContent = text ?? "";
}

function forgetSession(reason) {
  if (link) link.stop();
  link = null;
  session = null;
  snapshot = null;
  localStorage.removeItem(storageKey);
  $("game").hidden = true;
  $("join").hidden = false;
  showError(reason);
}

async function join(event) {
  event.preventDefault();
  const name = $("name").value.trim();
  const code = $("code").value.trim();
  if (!name) return showError("Enter your name.");
  if (!code) return showError("Enter the join code shown at the table.");
  $("join-button").disabled = true;
  showError("");
  try {
    const response = await fetch("/api/sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ game, name, join_code: code }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const reasons = {
        wrong_join_code: "That is not the code shown at the table.",
        unknown_game: "This table does not run that game.",
      };
      const detail = Array.isArray(body.detail) ? "Check your name (1–24 letters)." : null;
      return showError(reasons[body.error?.code] ?? detail ?? body.error?.message ?? `The hub said ${response.status}.`);
    }
    session = { ...body, name };
    localStorage.setItem(storageKey, JSON.stringify(session));
    start();
  } catch {
    showError("Cannot reach the hub. Are you on the table's Wi-Fi?");
  } finally {
    $("join-button").disabled = false;
  }
}

function start() {
  $("join").hidden = true;
  $("game").hidden = false;
  $("me").textContent = session.name;
  wire = topics(session.topic_root, session.game);
  link = new Link({
    wsPath: session.ws_path,
    clientId: session.client_id,
    username: session.client_id,
    password: session.token,
    presenceTopic: wire.presence(session.client_id),
    onState: showConnection,
    onMessage: receive,
  });
  link.subscribe([wire.status, wire.state, wire.reply(session.client_id)]);
}

function receive(topic, payload) {
  const message = parseJson(payload);
  if (message === null) return;
  if (topic === wire.state) {
    snapshot = message;
    render();
  } else if (topic === wire.reply(session.client_id)) {
    link.settle(message);
  } else if (topic === wire.status) {
    $("hub-offline").hidden = message.state === "online";
  }
}

async function send(type, args = {}) {
  if (busy || !link) return;
  busy = true;
  render();
  const body = { type, ...args };
  if (!["join", "leave", "rename"].includes(type) && snapshot) {
    body.expected_version = snapshot.version;
  }
  const reply = await link.command(wire.command(session.client_id), body);
  busy = false;
  showError(reply.ok ? "" : errorInWords(reply.error));
  if (reply.ok && type === "end_turn") points = 0;
  render();
}

function mySeat() {
  return snapshot?.players.find((player) => player.client_id === session.client_id) ?? null;
}

function seatCard(player) {
  const toMove = snapshot.status === "in_progress" && snapshot.current_player_id === player.id;
  const empty = player.name === null;
  const mine = player.client_id === session.client_id;
  const canSit = empty && !mySeat() && snapshot.status !== "in_progress";
  return element(
    "section",
    { class: "seat", "data-testid": `seat-${player.id}`, "data-to-move": toMove, "data-mine": mine },
    element("div", { class: "seat-label" }, `Seat ${player.id}${mine ? " · you" : ""}`),
    element("div", { class: "seat-name" }, empty ? "empty" : player.name),
    element("div", { class: "score", "data-testid": `score-${player.id}` }, empty ? "–" : String(player.score)),
    empty
      ? null
      : element("div", { class: "presence", "data-online": player.connected }, player.connected ? "here" : "away"),
    canSit
      ? element(
          "button",
          { "data-testid": `sit-${player.id}`, disabled: busy, onclick: () => send("join", { name: session.name, seat: player.id }) },
          "Sit here",
        )
      : null,
  );
}

function pointsPicker() {
  const shown = element("output", { class: "points", "data-testid": "points" }, String(points));
  const change = (delta) => {
    points = Math.max(0, Math.min(1000, points + delta));
    render();
  };
  return element(
    "div",
    { class: "picker" },
    element("button", { class: "step", "aria-label": "one point less", onclick: () => change(-1), disabled: busy || points === 0 }, "−"),
    shown,
    element("button", { class: "step", "aria-label": "one point more", "data-testid": "plus", onclick: () => change(1), disabled: busy }, "+"),
    element("button", { class: "step", "data-testid": "plus-5", onclick: () => change(5), disabled: busy }, "+5"),
  );
}

function controls() {
  const seat = mySeat();
  const box = element("div", { class: "controls", "data-testid": "controls" });
  if (!seat) {
    const free = snapshot.players.some((player) => player.name === null);
    box.append(
      element("p", { class: "hint", "data-testid": "watching" },
        free && snapshot.status !== "in_progress" ? "You are watching. Tap “Sit here” to play." : "You are watching."),
    );
    return box;
  }
  const bothSeated = snapshot.players.every((player) => player.name !== null);
  const button = (label, type, testid, args, kind = "action") =>
    element("button", { class: kind, "data-testid": testid, disabled: busy, onclick: () => send(type, args) }, label);
  const secondary = (label, type, testid) => button(label, type, testid, undefined, "action secondary");
  switch (snapshot.status) {
    case "not_started":
    case "finished":
      if (bothSeated) box.append(button(snapshot.status === "finished" ? "Play again" : "Start game", "start", "start"));
      else box.append(element("p", { class: "hint" }, "Waiting for a second player…"));
      box.append(secondary("Leave seat", "leave", "leave"));
      break;
    case "in_progress":
      if (snapshot.current_player_id === seat.id) {
        box.append(pointsPicker(), button(`End turn · ${points} point${points === 1 ? "" : "s"}`, "end_turn", "end-turn", { points }));
      } else {
        const other = snapshot.players[snapshot.current_player_id - 1];
        box.append(element("p", { class: "hint" }, `Waiting for ${other.name}…`));
      }
      box.append(secondary("Pause", "pause", "pause"));
      break;
    case "paused":
      box.append(button("Resume", "resume", "resume"), secondary("Leave seat", "leave", "leave"));
      break;
  }
  return box;
}

function render() {
  if (!snapshot) return;
  $("status").textContent = describeStatus(snapshot);
  $("status").dataset.status = snapshot.status;
  $("seats").replaceChildren(...snapshot.players.map(seatCard));
  $("controls").replaceChildren(controls());
}

$("join").addEventListener("submit", join);
$("leave-table").addEventListener("click", async () => {
  if (mySeat()) {
    // Give the seat back first, so that nobody is left holding it.
    const reply = await link.command(wire.command(session.client_id), { type: "leave" });
    if (!reply.ok) return showError(errorInWords(reply.error));
  }
  if (link) link.close();
  link = null;
  forgetSession("");
});
$("code").value = params.get("code") ?? "";
$("game-name").textContent = game;
session = loadSession();
if (session) start();
else $("join").hidden = false;
