// The display page: the game for a TV or the Pi's kiosk browser, with the QR code that
// lets phones join. It signs in as a display user (the join code is readable only by
// displays and operators), from the form or from the URL fragment
// (/display?game=main#user=tv&password=...), which never reaches the server.
//
// The password is kept in sessionStorage only: it survives a reload of this tab, and is
// gone when the browser closes (a kiosk starts again from its command line, fragment and
// all). localStorage would keep it on the disk of whatever machine shows the page.

import qrcode from "/assets/qrcode.mjs";
import {
  Link, ServerClock, describeStatus, element, parseJson, resultInWords, runCountdown, topics,
} from "./tablehub.js";

const params = new URLSearchParams(location.search);
const game = params.get("game") || "main";
const storageKey = "tablehub.display";
const QR_MODULE_PX = 8;
const QR_QUIET_MODULES = 4; // the QR spec's quiet zone
const HISTORY_PAGE = 500;
const $ = (id) => document.getElementById(id);

let wire = null;
let info = null;
let snapshot = null;
let link = null;
let historyAfter = 0;
let latest = null;
const clock = new ServerClock();
const events = new Map(); // version -> event: the history API and the live topic, merged

function credentials() {
  localStorage.removeItem(storageKey); // where older versions kept it
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("user") && fragment.get("password")) {
    const given = { user: fragment.get("user"), password: fragment.get("password") };
    sessionStorage.setItem(storageKey, JSON.stringify(given));
    history.replaceState(null, "", location.pathname + location.search);
    return given;
  }
  try {
    return JSON.parse(sessionStorage.getItem(storageKey));
  } catch {
    return null;
  }
}

function showConnection(state) {
  const words = { connecting: "connecting…", online: "connected", reconnecting: "reconnecting…", refused: "signed out" };
  $("connection").textContent = words[state];
  $("connection").dataset.state = state;
  if (state === "online") loadHistory();
  if (state === "refused") {
    sessionStorage.removeItem(storageKey);
    $("board").hidden = true;
    $("login-page").hidden = false;
    $("message").textContent = "The hub refused this user name or password.";
  }
}

function nameOf(clientId) {
  return snapshot?.players.find((player) => player.client_id === clientId)?.name ?? clientId;
}

function describeEvent(event) {
  const who = nameOf(event.by);
  switch (event.type) {
    case "end_turn": return `${who} scored ${event.points ?? 0}`;
    case "turn_timeout": return `${snapshot?.players[event.seat - 1]?.name ?? `Seat ${event.seat}`} ran out of time: 0 points`;
    case "join": return `${event.name} sat down in seat ${event.seat}`;
    case "leave": return `${who} gave up the seat`;
    case "rename": return `${who} is now ${event.name}`;
    case "start": return `New game, ${event.max_rounds} rounds`;
    case "pause": return `${who} paused the game`;
    case "resume": return `${who} resumed the game`;
    case "reset": return "The game was reset";
    case "undo": return "The last move was undone";
    case "kick": return `Seat ${event.seat} was freed`;
    default: return event.type;
  }
}

// The moves of the latest game, replayed from its events; `undo` steps back like the hub.
function sheetOf(ordered) {
  const before = [];
  let sheet = { moves: [], started: false };
  for (const event of ordered) {
    if (event.type === "undo") {
      sheet = before.pop() ?? sheet;
      continue;
    }
    before.push(sheet);
    if (event.type === "start") sheet = { moves: [], started: true };
    else if (event.type === "reset") sheet = { moves: [], started: false };
    else if (sheet.started && (event.type === "end_turn" || event.type === "turn_timeout")) {
      const move = { points: event.points ?? 0, timeout: event.type === "turn_timeout" };
      sheet = { ...sheet, moves: [...sheet.moves, move] };
    }
  }
  return sheet;
}

async function loadHistory() {
  try {
    for (;;) {
      const response = await fetch(`/api/games/${encodeURIComponent(game)}/history?after=${historyAfter}&limit=${HISTORY_PAGE}`);
      if (!response.ok) return;
      const page = await response.json();
      for (const event of page.events) events.set(event.version, event);
      if (page.events.length) historyAfter = page.events[page.events.length - 1].version;
      if (page.next_after === null) break;
    }
  } catch {
    return; // again at the next reconnect; live events still arrive
  }
  render();
}

function showJoinCode(message) {
  const url = message.url ?? (info?.public_url ? `${info.public_url}/?game=${encodeURIComponent(game)}&code=${encodeURIComponent(message.code)}` : null);
  $("join-code").textContent = message.code;
  $("join").hidden = false;
  if (url === null) {
    $("qr").replaceChildren();
    $("join-url").textContent = "(the hub has not told its address yet)";
    return;
  }
  const qr = qrcode(0, "M");
  qr.addData(url);
  qr.make();
  const image = element("img", {
    src: qr.createDataURL(QR_MODULE_PX, QR_MODULE_PX * QR_QUIET_MODULES),
    alt: `QR code for ${url}`,
    "data-modules": qr.getModuleCount(),
  });
  $("qr").replaceChildren(image);
  $("join-url").textContent = url.replace(/^https?:\/\//, "");
}

function seatCard(player) {
  const toMove = snapshot.status === "in_progress" && snapshot.current_player_id === player.id;
  const winner = snapshot.status === "finished" && snapshot.winner_id === player.id;
  const empty = player.name === null;
  const tag = winner ? "winner" : toMove ? "to move" : null;
  return element(
    "section",
    { class: "seat", "data-testid": `seat-${player.id}`, "data-to-move": toMove, "data-winner": winner, "aria-label": `Seat ${player.id}` },
    element("div", { class: "seat-label" }, `Seat ${player.id}`, tag ? element("span", { class: `tag tag-${tag.replace(" ", "-")}` }, tag) : null),
    element("div", { class: "seat-name" }, empty ? "free: scan to sit here" : player.name),
    element("div", { class: "score", "data-testid": `score-${player.id}` }, empty ? "–" : String(player.score)),
    empty ? null : element("div", { class: "presence", "data-online": player.connected }, player.connected ? "here" : "away"),
  );
}

function moveCell(move, toMove) {
  if (move) {
    return element("td", { "data-timeout": move.timeout }, String(move.points), move.timeout ? element("span", { class: "timeout" }, " time up") : null);
  }
  return element("td", { class: toMove ? "pending" : "" }, toMove ? "…" : "");
}

function renderSheet() {
  const ordered = [...events.values()].sort((a, b) => a.version - b.version);
  const sheet = sheetOf(ordered);
  latest = ordered.length ? describeEvent(ordered[ordered.length - 1]) : null;
  if (!sheet.started || !snapshot || snapshot.status === "not_started") {
    return [element("p", { class: "hint" }, "The moves show up here once the game starts."), latestLine()];
  }
  const [p1, p2] = snapshot.players;
  const live = snapshot.status === "in_progress" || snapshot.status === "paused";
  const rounds = Math.max(Math.ceil(sheet.moves.length / 2), live ? snapshot.current_round : 0);
  const rows = [];
  for (let round = 1; round <= rounds; round += 1) {
    const current = live && round === snapshot.current_round;
    rows.push(
      element(
        "tr",
        { "data-current": current },
        element("th", { scope: "row" }, `Round ${round}`),
        moveCell(sheet.moves[2 * round - 2], current && snapshot.current_player_id === 1),
        moveCell(sheet.moves[2 * round - 1], current && snapshot.current_player_id === 2),
      ),
    );
  }
  if (snapshot.status === "finished") {
    rows.push(element("tr", { class: "result" }, element("td", { colspan: 3, "data-testid": "result" }, `Game over · ${resultInWords(snapshot)}`)));
  }
  const table = element(
    "table",
    {},
    element("thead", {}, element("tr", {}, element("th", { scope: "col" }, "Round"), element("th", { scope: "col" }, p1.name ?? "Seat 1"), element("th", { scope: "col" }, p2.name ?? "Seat 2"))),
    element("tbody", {}, ...rows),
  );
  return [table, latestLine()];
}

function latestLine() {
  return latest ? element("p", { class: "latest", "data-testid": "latest" }, `Latest: ${latest}`) : null;
}

function render() {
  if (!snapshot) return;
  $("status").textContent = describeStatus(snapshot);
  $("status").dataset.status = snapshot.status;
  $("status").dataset.version = snapshot.version;
  $("seats").replaceChildren(...snapshot.players.map(seatCard));
  $("sheet").replaceChildren(...renderSheet().filter(Boolean));
  $("sheet").scrollTop = $("sheet").scrollHeight; // the current round stays in sight
  drawClock();
}

function receive(topic, payload) {
  const message = parseJson(payload);
  if (message === null) return;
  if (topic === wire.state) {
    clock.observe(message);
    snapshot = message;
  } else if (topic === wire.events && Number.isInteger(message.version)) {
    events.set(message.version, message);
  } else if (topic === wire.join && typeof message.code === "string") {
    showJoinCode(message);
  } else if (topic === wire.status) {
    $("hub-offline").hidden = message.state === "online";
  }
  render();
}

async function start({ user, password }) {
  while (wire === null) {
    info = await clock.sync();
    if (info) {
      wire = topics(info.topic_root, game);
    } else {
      $("message").textContent = "Cannot reach the hub; trying again…";
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
  $("login-page").hidden = true;
  $("board").hidden = false;
  $("message").textContent = "";
  link = new Link({
    wsPath: info.ws_path,
    clientId: user,
    username: user,
    password,
    presenceTopic: wire.presence(user),
    onState: showConnection,
    onMessage: receive,
  });
  link.subscribe([wire.status, wire.state, wire.events, wire.join]);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const given = { user: $("user").value.trim(), password: $("password").value };
  sessionStorage.setItem(storageKey, JSON.stringify(given));
  start(given);
});
const drawClock = runCountdown($("clock"), () => snapshot, clock);
const saved = credentials();
if (saved) start(saved);
else $("login-page").hidden = false;
