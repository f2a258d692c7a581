// The browser's side of the wire contract (docs/protocol.md): topics, the MQTT link with
// reconnects and backoff, commands with replies, and error codes in words.
// Shared by the phone page (phone.js) and the display page (display.js).

import mqtt from "/assets/mqtt.esm.js";

export const topics = (root, game) => ({
  status: `${root}/status`,
  state: `${root}/games/${game}/state`,
  events: `${root}/games/${game}/events`,
  join: `${root}/games/${game}/join`,
  command: (clientId) => `${root}/games/${game}/cmd/${clientId}`,
  reply: (clientId) => `${root}/clients/${clientId}/reply`,
  presence: (clientId) => `${root}/clients/${clientId}/presence`,
});

// Every code of hub/protocol/errors.py, as a player would want to read it.
const ERROR_WORDS = {
  invalid_json: "The hub could not read that message.",
  invalid_command: "That move is not valid.",
  unknown_command: "The hub does not know that move.",
  unknown_game: "This table does not run that game.",
  not_seated: "Take a seat first.",
  seat_taken: "Someone else just took that seat.",
  game_full: "Both seats are taken.",
  already_seated: "You already have a seat.",
  not_your_turn: "It is not your turn.",
  wrong_status: "That is not possible right now.",
  not_enough_players: "Two players are needed.",
  nothing_to_undo: "There is nothing to undo.",
  version_conflict: "The game moved on just before your move; look again and retry.",
  forbidden: "You are not allowed to do that.",
  rate_limited: "Slow down a little.",
  payload_too_large: "That message is too large.",
  storage_unavailable: "The hub cannot save right now; nothing changed. Try again soon.",
};

// Codes whose server reason says more than a fixed sentence could ("cannot leave while
// the game is in progress"): the phone shows the hub's own words for these.
const SERVER_REASONS = new Set(["wrong_status", "not_enough_players", "forbidden", "invalid_command"]);

export function errorInWords(error) {
  if (SERVER_REASONS.has(error.code) && error.message) return sentence(error.message);
  return ERROR_WORDS[error.code] ?? (error.message ? sentence(error.message) : "The hub refused that.");
}

function sentence(text) {
  const trimmed = text.trim();
  return trimmed.charAt(0).toUpperCase() + trimmed.slice(1) + (/[.!?]$/.test(trimmed) ? "" : ".");
}

export function parseJson(bytes) {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes));
    return value !== null && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 15000;
// A command with no reply is sent again, the same payload with the same request_id (the
// hub applies it at most once: docs/protocol.md, "Retries and duplicates"): after 3 s,
// then 6 s, 12 s and every 15 s, until 60 s have passed.
const RESEND_FIRST_MS = 3000;
const RESEND_MAX_MS = 15000;
const COMMAND_GIVE_UP_MS = 60000;

// One MQTT connection over the bridge's WebSocket. Reconnects by itself with exponential
// backoff and jitter (MQTT.js's own reconnect retries at a fixed period, so it is off),
// at once when the page becomes visible or the network returns, and reports its state to
// `onState`: "connecting", "online", "reconnecting", "refused".
export class Link {
  constructor({ wsPath, clientId, username, password, presenceTopic, onState, onMessage }) {
    this.onState = onState;
    this.onMessage = onMessage;
    this.presenceTopic = presenceTopic;
    this.subscriptions = [];
    this.pending = new Map();
    this.retryMs = FIRST_RETRY_MS;
    this.retryTimer = null;
    this.stopped = false;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.client = mqtt.connect(`${scheme}://${location.host}${wsPath}`, {
      protocolVersion: 4,
      clientId,
      username,
      password,
      clean: true,
      keepalive: 20,
      connectTimeout: 8000,
      reconnectPeriod: 0,
      resubscribe: false,
      will: { topic: presenceTopic, payload: '{"state":"offline"}', qos: 1, retain: true },
    });
    onState("connecting");
    this.client.on("connect", () => this.connected());
    this.client.on("close", () => this.lost());
    this.client.on("message", (topic, payload) => this.onMessage(topic, payload));
    this.client.on("error", (error) => {
      // CONNACK 4 (bad user name or password) or 5 (not authorised): the credentials
      // are no good (an expired session); retrying would only be throttled.
      if (error.code === 4 || error.code === 5) {
        this.stop();
        onState("refused");
      }
    });
    const wake = () => {
      if (!this.stopped && !this.client.connected) this.retryNow();
    };
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") wake();
    });
    window.addEventListener("online", wake);
  }

  connected() {
    this.retryMs = FIRST_RETRY_MS;
    if (this.presenceTopic) {
      this.client.publish(this.presenceTopic, '{"state":"online"}', { qos: 1, retain: true });
    }
    if (this.subscriptions.length) this.client.subscribe(this.subscriptions, { qos: 1 });
    this.onState("online");
  }

  lost() {
    if (this.stopped || this.retryTimer !== null) return;
    const delay = Math.round(this.retryMs * (0.75 + Math.random() / 2));
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    this.retryTimer = setTimeout(() => this.retryNow(), delay);
    this.onState("reconnecting");
  }

  retryNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.client.reconnect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.client.end(true);
  }

  // Subscribed now and again after every reconnect (clean sessions keep nothing), so the
  // retained state arrives at once each time.
  subscribe(filters) {
    this.subscriptions.push(...filters);
    if (this.client.connected) this.client.subscribe(filters, { qos: 1 });
  }

  // Publish a command; resolves with the hub's reply ({ok, version} or {ok: false, error}).
  // Without a reply it is sent again (see RESEND_FIRST_MS), calling `onResend(n)` at the
  // n-th resend; a resend waits while the link is down (MQTT.js would queue every copy).
  command(topic, body, { onResend = () => {} } = {}) {
    const requestId = Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
    const payload = JSON.stringify({ ...body, request_id: requestId });
    return new Promise((resolve) => {
      const started = Date.now();
      let wait = RESEND_FIRST_MS;
      let resends = 0;
      let timer = null;
      const again = () => {
        const waited = Date.now() - started;
        if (waited >= COMMAND_GIVE_UP_MS) {
          this.pending.delete(requestId);
          resolve({ ok: false, error: { code: "timeout", message: "No answer from the hub; check the connection and try again." } });
          return;
        }
        if (this.client.connected) {
          this.client.publish(topic, payload, { qos: 1 });
          resends += 1;
          onResend(resends);
        }
        wait = Math.min(wait * 2, RESEND_MAX_MS);
        timer = setTimeout(again, Math.min(wait, COMMAND_GIVE_UP_MS - waited));
      };
      timer = setTimeout(again, RESEND_FIRST_MS);
      this.pending.set(requestId, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.client.publish(topic, payload, { qos: 1 });
    });
  }

  // Feed a message from the reply topic; true if it answered a pending command.
  settle(reply) {
    const done = reply && this.pending.get(reply.request_id);
    if (!done) return false;
    this.pending.delete(reply.request_id);
    done(reply);
    return true;
  }

  // Leave politely: offline presence first, then a clean DISCONNECT (no last will).
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.presenceTopic && this.client.connected) {
      this.client.publish(this.presenceTopic, '{"state":"offline"}', { qos: 1, retain: true });
    }
    this.client.end();
  }
}

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("data-")) node.setAttribute(name, String(value)); // "true"/"false" for CSS
    else if (value === undefined || value === null || value === false) continue;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// The result in words, the winner's score first: "Alice wins 20–14", "A tie, 10–10".
export function resultInWords(snapshot) {
  const [p1, p2] = snapshot.players;
  if (snapshot.winner_id === null) return `A tie, ${p1.score}–${p2.score}`;
  const winner = snapshot.players[snapshot.winner_id - 1];
  const loser = snapshot.players[2 - snapshot.winner_id];
  return `${winner.name} wins ${winner.score}–${loser.score}`;
}

export function describeStatus(snapshot) {
  const [p1, p2] = snapshot.players;
  const mover = snapshot.players[snapshot.current_player_id - 1];
  switch (snapshot.status) {
    case "not_started":
      return p1.name && p2.name ? "Ready to start" : "Waiting for players";
    case "in_progress":
      return `Round ${snapshot.current_round} of ${snapshot.max_rounds} · ${mover.name}'s turn`;
    case "paused":
      return `Paused · round ${snapshot.current_round} of ${snapshot.max_rounds}`;
    case "finished":
      return resultInWords(snapshot);
    default:
      return snapshot.status;
  }
}

// The hub's time, for the turn clock: local time minus an offset estimated from the HTTP
// Date header (whole seconds) and tightened by every snapshot: it was made at or after its
// `updated_at`, so (arrival − updated_at) is an upper bound of the offset.
export class ServerClock {
  constructor() {
    this.offsetMs = null;
  }

  async sync() {
    const sent = Date.now();
    try {
      const response = await fetch("/api/info", { cache: "no-store" });
      const date = Date.parse(response.headers.get("Date") ?? "");
      if (!Number.isNaN(date)) this.bound((sent + Date.now()) / 2 - (date + 500));
      return await response.json();
    } catch {
      return null;
    }
  }

  observe(snapshot) {
    const made = Date.parse(snapshot.updated_at);
    if (!Number.isNaN(made)) this.bound(Date.now() - made);
  }

  bound(offsetMs) {
    if (this.offsetMs === null || offsetMs < this.offsetMs) this.offsetMs = offsetMs;
  }

  now() {
    return Date.now() - (this.offsetMs ?? 0);
  }
}

// Whole seconds left on the turn clock, or null when no clock runs (paused: what is left).
export function secondsLeft(snapshot, clock) {
  if (snapshot.status === "paused" && snapshot.turn_remaining_ms != null) {
    return Math.ceil(snapshot.turn_remaining_ms / 1000);
  }
  if (snapshot.status !== "in_progress" || !snapshot.turn_deadline) return null;
  return Math.max(0, Math.ceil((Date.parse(snapshot.turn_deadline) - clock.now()) / 1000));
}

export function clockInWords(seconds) {
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

// Redraw the countdown of `snapshot()` into `target` four times a second (nothing on the wire).
export function runCountdown(target, snapshot, clock) {
  const draw = () => {
    const current = snapshot();
    const seconds = current ? secondsLeft(current, clock) : null;
    target.hidden = seconds === null;
    if (seconds === null) return;
    const text = clockInWords(seconds);
    const key = `${current.status} ${seconds}`;
    if (target.dataset.key !== key) {
      target.textContent = current.status === "paused" ? `${text} left` : text;
      target.dataset.key = key;
      target.dataset.seconds = String(seconds);
      target.dataset.low = String(seconds <= 5);
    }
  };
  draw();
  setInterval(draw, 250);
  return draw;
}
