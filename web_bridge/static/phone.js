// The phone page: join the table with its code, take a seat or watch, play.
// The session (MQTT credentials from POST /api/sessions) is kept in localStorage, so a
// reload, a sleeping phone or a lost Wi-Fi comes back to the same seat.

import {
  Link, ServerClock, describeStatus, element, errorInWords, parseJson, resultInWords, runCountdown, topics,
} from "./tablehub.js";

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
const clock = new ServerClock();

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
  pill.hidden = false;
  if (state === "refused") {
    // The hub refuses a pass it took back (a kick, the operator) as it refuses an expired one.
    const expired = !session || Date.parse(session.expires_at) <= Date.now();
    forgetSession(
      expired
        ? "Your pass for this table has expired. Join again with the code on the TV."
        : "You were removed from the table. Ask the host, then join again with the code on the TV.",
    );
  }
}

function showError(text) {
  $("message").textContent = text ?? "";
}

// A command got no answer yet and is being sent again (the hub applies it only once).
function showResending() {
  showError("No answer yet; sending again…");
}

function forgetSession(reason) {
  if (link) link.stop();
  link = null;
  session = null;
  snapshot = null;
  localStorage.removeItem(storageKey);
  $("game").hidden = true;
  $("join-page").hidden = false;
  $("connection").hidden = true;
  showError(reason);
}

async function join(event) {
  event.preventDefault();
  const name = $("name").value.trim();
  const code = $("code").value.trim();
  if (!name) return showError("Enter your name.");
  if (!code) return showError("Enter the join code shown on the TV.");
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
      const detail = Array.isArray(body.detail) ? "Check your name (1–24 letters)." : null;
      if (body.error?.code === "phones_unavailable") {
        return showError(`This table cannot take phones: ${body.error.message}.`);
      }
      return showError(body.error ? errorInWords(body.error) : detail ?? `The hub said ${response.status}.`);
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
  $("join-page").hidden = true;
  $("game").hidden = false;
  $("me").textContent = `You: ${session.name}`;
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
    clock.observe(message);
    const wasMyTurn = isMyTurn();
    snapshot = message;
    if (!wasMyTurn && isMyTurn()) {
      points = 0;
      buzz();
    }
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
  const reply = await link.command(wire.command(session.client_id), body, { onResend: showResending });
  busy = false;
  showError(reply.ok ? "" : errorInWords(reply.error));
  if (reply.ok && type === "end_turn") points = 0;
  render();
}

function mySeat() {
  return snapshot?.players.find((player) => player.client_id === session.client_id) ?? null;
}

function isMyTurn() {
  const seat = mySeat();
  return snapshot?.status === "in_progress" && seat !== null && snapshot.current_player_id === seat.id;
}

// A short buzz when the turn comes to this phone (where the browser allows it: Chrome
// needs a tap on the page first, Safari has no vibration at all).
function buzz() {
  if (navigator.userActivation && !navigator.userActivation.hasBeenActive) return; // refused (and logged) anyway
  try {
    navigator.vibrate?.(200);
  } catch {
    // not allowed here: the headline and its colour still say it
  }
}

function seatCard(player) {
  const toMove = snapshot.status === "in_progress" && snapshot.current_player_id === player.id;
  const empty = player.name === null;
  const mine = player.client_id === session.client_id;
  const winner = snapshot.status === "finished" && snapshot.winner_id === player.id;
  const canSit = empty && !mySeat() && snapshot.status !== "in_progress";
  const tags = [mine ? "you" : null, toMove ? "to move" : null, winner ? "winner" : null].filter(Boolean);
  return element(
    "section",
    {
      class: "seat", "data-testid": `seat-${player.id}`, "data-to-move": toMove, "data-mine": mine,
      "data-winner": winner, "aria-label": `Seat ${player.id}`,
    },
    element("div", { class: "seat-label" }, `Seat ${player.id}`, ...tags.map((tag) => element("span", { class: `tag tag-${tag.replace(" ", "-")}` }, tag))),
    element("div", { class: "seat-name" }, empty ? "free" : player.name),
    element("div", { class: "score", "data-testid": `score-${player.id}` }, empty ? "–" : String(player.score)),
    empty
      ? null
      : element("div", { class: "presence", "data-online": player.connected }, player.connected ? "here" : "away"),
    canSit
      ? element(
          "button",
          { class: "sit", "data-testid": `sit-${player.id}`, disabled: busy, onclick: () => send("join", { name: session.name, seat: player.id }) },
          "Sit here",
        )
      : null,
  );
}

// −5 −1 [points] +1 +5, labelled, starting at 0 each turn.
function pointsPicker() {
  const change = (delta) => {
    points = Math.max(0, Math.min(1000, points + delta));
    render();
  };
  const step = (delta) =>
    element(
      "button",
      {
        class: "step", "data-testid": delta > 0 ? `plus-${delta}` : `minus-${-delta}`,
        "aria-label": `${delta > 0 ? "add" : "take away"} ${Math.abs(delta)} point${Math.abs(delta) === 1 ? "" : "s"}`,
        onclick: () => change(delta), disabled: busy || points + delta < 0,
      },
      `${delta > 0 ? "+" : "−"}${Math.abs(delta)}`,
    );
  return element(
    "div",
    { class: "picker", role: "group", "aria-labelledby": "points-label" },
    element("div", { class: "picker-label", id: "points-label" }, "Points this turn (starts at 0)"),
    element(
      "div",
      { class: "picker-row" },
      step(-5),
      step(-1),
      element("output", { class: "points", "data-testid": "points", "aria-live": "polite" }, String(points)),
      step(1),
      step(5),
    ),
  );
}

// Rarely used actions, away from the thumb: near the top of the screen.
function auxiliary() {
  const seat = mySeat();
  const box = element("div", { class: "aux-row" });
  const small = (label, type, testid) =>
    element("button", { class: "small", "data-testid": testid, disabled: busy, onclick: () => send(type) }, label);
  if (seat && snapshot.status === "in_progress") box.append(small("Pause game", "pause", "pause"));
  if (seat && snapshot.status !== "in_progress") {
    box.append(small("Give up my seat", "leave", "leave"));
  }
  return box;
}

// The primary action, at the bottom where the thumb is.
function controls() {
  const seat = mySeat();
  const box = element("div", { class: "controls", "data-testid": "controls" });
  const primary = (label, type, testid, args) =>
    element("button", { class: "action", "data-testid": testid, disabled: busy, onclick: () => send(type, args) }, label);
  if (!seat) {
    const free = snapshot.players.some((player) => player.name === null);
    box.append(
      element("p", { class: "hint", "data-testid": "watching" },
        free && snapshot.status !== "in_progress" ? "You are watching. Tap “Sit here” to play." : "You are watching."),
    );
    return box;
  }
  const bothSeated = snapshot.players.every((player) => player.name !== null);
  switch (snapshot.status) {
    case "not_started":
    case "finished":
      if (bothSeated) box.append(primary(snapshot.status === "finished" ? "Play again" : "Start game", "start", "start"));
      else box.append(element("p", { class: "hint" }, "Waiting for a second player…"));
      break;
    case "in_progress":
      if (isMyTurn()) {
        box.append(pointsPicker(), primary(`End turn · ${points} point${points === 1 ? "" : "s"}`, "end_turn", "end-turn", { points }));
      } else {
        const other = snapshot.players[snapshot.current_player_id - 1];
        box.append(element("p", { class: "hint" }, `Waiting for ${other.name}…`));
      }
      break;
    case "paused":
      box.append(primary("Resume", "resume", "resume"));
      break;
  }
  return box;
}

function headline() {
  const seat = mySeat();
  const round = `Round ${snapshot.current_round} of ${snapshot.max_rounds}`;
  switch (snapshot.status) {
    case "in_progress": {
      const mover = snapshot.players[snapshot.current_player_id - 1];
      if (isMyTurn()) return ["Your turn!", round, "mine"];
      return [`${mover.name}'s turn`, round, "other"];
    }
    case "paused":
      return ["Paused", round, "paused"];
    case "finished":
      if (seat && snapshot.winner_id === seat.id) {
        const other = snapshot.players[2 - seat.id];
        return ["You won!", `${seat.score}–${other.score}`, "won"];
      }
      return [resultInWords(snapshot), "Game over", "over"];
    default:
      return [describeStatus(snapshot), seat ? `Seat ${seat.id}` : "", "waiting"];
  }
}

function render() {
  if (!snapshot) return;
  const seat = mySeat();
  const [title, detail, mood] = headline();
  $("status").textContent = title;
  $("status").dataset.status = snapshot.status;
  $("detail").textContent = detail;
  $("headline").dataset.mood = mood;
  $("me").textContent = seat ? `You: ${session.name}, seat ${seat.id}` : `You: ${session.name}, watching`;
  $("seats").replaceChildren(...snapshot.players.map(seatCard));
  $("aux").replaceChildren(auxiliary());
  $("controls").replaceChildren(controls());
  drawClock();
}

$("join").addEventListener("submit", join);
$("leave-table").addEventListener("click", async () => {
  if (mySeat()) {
    // Give the seat back first, so that nobody is left holding it.
    const reply = await link.command(wire.command(session.client_id), { type: "leave" }, { onResend: showResending });
    if (!reply.ok) return showError(errorInWords(reply.error));
  }
  if (link) link.close();
  link = null;
  forgetSession("");
});
$("code").value = params.get("code") ?? "";
const drawClock = runCountdown($("clock"), () => snapshot, clock);
clock.sync();
session = loadSession();
if (session) start();
else $("join-page").hidden = false;
