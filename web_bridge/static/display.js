// The display page: the game for a TV or the Pi's kiosk browser, with the QR code that
// lets phones join. It signs in as a display user (the join code is readable only by
// displays and operators), from the form or from the URL fragment
// (/display?game=main#user=tv&password=...), which never reaches the server.

import qrcode from "/assets/qrcode.mjs";
import { Link, describeStatus, element, parseJson, topics } from "./tablehub.js";

const params = new URLSearchParams(location.search);
const game = params.get("game") || "main";
const storageKey = "tablehub.display";
const MAX_EVENTS = 6;
const $ = (id) => document.getElementById(id);
let wire = null;

let snapshot = null;
let link = null;
const events = [];

function credentials() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("user") && fragment.get("password")) {
    const given = { user: fragment.get("user"), password: fragment.get("password") };
    localStorage.setItem(storageKey, JSON.stringify(given));
    history.replaceState(null, "", location.pathname + location.search);
    return given;
  }
  try {
    return JSON.parse(localStorage.getItem(storageKey));
  } catch {
    return null;
  }
}

function showConnection(state) {
  const words = { connecting: "connecting…", online: "connected", reconnecting: "reconnecting…", refused: "signed out" };
  $("connection").textContent = words[state];
  $("connection").dataset.state = state;
  if (state === "refused") {
    localStorage.removeItem(storageKey);
    $("board").hidden = true;
    $("login").hidden = false;
    $("message").textContent = "The hub refused this user name or password.";
  }
}

function nameOf(clientId) {
  return snapshot?.players.find((player) => player.client_id === clientId)?.name ?? clientId;
}

function describeEvent(event) {
  const who = nameOf(event.by);
  switch (event.type) {
    case "end_turn": return `${who} scored ${event.points}`;
    case "join": return `${event.name} sat down in seat ${event.seat}`;
    case "leave": return `${who} left the table`;
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

function showJoinCode(code) {
  const url = `${location.origin}/?game=${encodeURIComponent(game)}&code=${encodeURIComponent(code)}`;
  const qr = qrcode(0, "M");
  qr.addData(url);
  qr.make();
  const image = element("img", { src: qr.createDataURL(8, 0), alt: `QR code for ${url}` });
  $("qr").replaceChildren(image);
  $("join-code").textContent = code;
  $("join-url").textContent = url;
  $("join").hidden = false;
}

function seatCard(player) {
  const toMove = snapshot.status === "in_progress" && snapshot.current_player_id === player.id;
  const empty = player.name === null;
  return element(
    "section",
    { class: "seat", "data-testid": `seat-${player.id}`, "data-to-move": toMove },
    element("div", { class: "seat-label" }, `Seat ${player.id}${toMove ? " · to move" : ""}`),
    element("div", { class: "seat-name" }, empty ? "scan to sit here" : player.name),
    element("div", { class: "score", "data-testid": `score-${player.id}` }, empty ? "–" : String(player.score)),
    empty ? null : element("div", { class: "presence", "data-online": player.connected }, player.connected ? "here" : "away"),
  );
}

function render() {
  if (!snapshot) return;
  $("status").textContent = describeStatus(snapshot);
  $("status").dataset.status = snapshot.status;
  $("status").dataset.version = snapshot.version;
  $("seats").replaceChildren(...snapshot.players.map(seatCard));
  const lines = events.length ? events : ["Moves will show up here."];
  $("events").replaceChildren(...lines.map((text) => element("li", {}, text)));
}

function receive(topic, payload) {
  const message = parseJson(payload);
  if (message === null) return;
  if (topic === wire.state) {
    snapshot = message;
  } else if (topic === wire.events) {
    events.unshift(describeEvent(message));
    events.length = Math.min(events.length, MAX_EVENTS);
  } else if (topic === wire.join && typeof message.code === "string") {
    showJoinCode(message.code);
  } else if (topic === wire.status) {
    $("hub-offline").hidden = message.state === "online";
  }
  render();
}

async function start({ user, password }) {
  while (wire === null) {
    try {
      const info = await (await fetch("/api/info")).json();
      wire = topics(info.topic_root, game);
    } catch {
      $("message").textContent = "Cannot reach the hub; trying again…";
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
  $("login").hidden = true;
  $("board").hidden = false;
  $("message").textContent = "";
  link = new Link({
    wsPath: "/mqtt",
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
  localStorage.setItem(storageKey, JSON.stringify(given));
  start(given);
});
$("game-name").textContent = game;
const saved = credentials();
if (saved) start(saved);
else $("login").hidden = false;
