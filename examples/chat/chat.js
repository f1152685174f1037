// The chat page, on wskit's browser client (/wskit.js): it reconnects by itself, queues what
// is said while away, and rejoins its room from the last position it saw, so a page that
// comes back after a lost connection (or a server restart) shows every message once.
import { Client } from "/wskit.js";

const $ = (id) => document.getElementById(id);
const JOIN_TIMEOUT_MS = 5000;
const topicOf = (room) => `room:${room}`;

const state = {
  clientId: null,
  name: null, // our nickname
  room: null, // the room we are in (after the server confirmed the JOIN)
  joining: null, // {room, resolve, reject}: the JOIN waiting for its answer
  seen: new Set(), // keys of messages shown (history, replays and live deliveries overlap)
  countdown: null,
};

const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const client = new Client(`${scheme}//${location.host}/`, {
  backoff: { initialDelay: 500, maxDelay: 5000 },
  heartbeat: { interval: 5000, timeout: 3000 },
});

// -- joining -----------------------------------------------------------------------------

// Send JOIN and wait for its outcome: POSITION or JOINED (our own) for the room, or the ERROR
// that refuses it. JOIN is an event, so its refusal is the next ERROR of a JOIN's kind.
function joinRoom(room, { position = null, leave = null } = {}) {
  if (state.joining) state.joining.reject(new Error("superseded by another JOIN"));
  return new Promise((resolve, reject) => {
    const pending = { room, resolve, reject };
    const timer = setTimeout(() => settle(new Error("The server did not answer the JOIN")), JOIN_TIMEOUT_MS);
    function settle(error, joined) {
      if (state.joining !== pending) return;
      state.joining = null;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(joined);
    }
    pending.resolve = (joined) => settle(null, joined);
    pending.reject = (error) => settle(error);
    state.joining = pending;
    const payload = { room, name: state.name };
    if (position) Object.assign(payload, position);
    if (leave && leave !== room) payload.leave = leave;
    client.send("JOIN", payload).catch(pending.reject);
  });
}

// The user's JOIN (the form): the old room is left by the server only once the new one is
// joined, so a refused JOIN (bad name, full room) leaves the page where it was.
async function join(room, name) {
  const previous = state.room;
  if (previous === room && state.name === name) return;
  state.name = name;
  let joined;
  try {
    joined = await joinRoom(room, { leave: previous });
  } catch (err) {
    showError(err);
    return;
  }
  if (previous !== room) clearRoom();
  enterRoom(room);
  if (joined) addNotice(`${joined.name} joined (${joined.members} here)`); // our JOINED came first
  await loadHistory(room);
}

// After every reconnect, before what was said offline is sent (client.onConnect): rejoin from
// the last position seen, so the server replays what was missed; when it cannot (the history
// is gone, e.g. the server restarted), join afresh and merge the room's HISTORY.
client.onConnect(async () => {
  const room = state.room;
  if (!room) return;
  const position = client.positions.get(topicOf(room)) || null;
  try {
    await joinRoom(room, { position });
    addNotice(position ? "Reconnected: rejoined the room from where this page left" : "Reconnected: rejoined the room");
    return;
  } catch (err) {
    if (err.code !== "FAILED_PRECONDITION") return showError(err);
  }
  try {
    await joinRoom(room);
    addNotice("Reconnected; the server's room history restarted, messages shown here are kept");
    await loadHistory(room);
  } catch (err) {
    showError(err);
  }
});

async function loadHistory(room) {
  try {
    const res = await client.request("HISTORY", { room, limit: 100 });
    if (state.room === room) for (const m of res.payload.messages) addMessage(m);
  } catch (err) {
    showError(err);
  }
}

async function refreshMembers() {
  const room = state.room;
  if (!room || client.state !== "open") return;
  try {
    const res = await client.request("WHO", { room });
    if (state.room === room) $("members").replaceChildren(...res.payload.members.map((name) => li(name)));
  } catch (err) {
    if (err.code !== "UNAVAILABLE") showError(err);
  }
}

// -- what the server sends -----------------------------------------------------------------

client.on("WELCOME", (msg) => {
  state.clientId = msg.payload.client_id;
});

client.on("POSITION", (msg) => {
  const p = msg.payload;
  const topic = topicOf(p.room);
  const last = client.positions.get(topic);
  if (!last || last.epoch !== p.epoch || last.offset < p.offset) client.positions.set(topic, { offset: p.offset, epoch: p.epoch });
  if (state.joining && state.joining.room === p.room) state.joining.resolve();
});

client.on("ROOM_MSG", (msg) => {
  if (msg.payload.room === state.room) addMessage(msg.payload);
});

client.on("JOINED", (msg) => {
  const p = msg.payload;
  if (p.name === state.name && state.joining && state.joining.room === p.room) return state.joining.resolve(p);
  if (p.room === state.room) {
    addNotice(`${p.name} joined (${p.members} here)`);
    refreshMembers();
  }
});

client.on("LEFT", (msg) => {
  const p = msg.payload;
  if (p.room !== state.room || p.name === state.name) return;
  addNotice(`${p.name} left (${p.members} here)`);
  refreshMembers();
});

// errors that answer no request: a refused JOIN, SAY or LEAVE
client.addEventListener("error", (event) => {
  const err = event.detail;
  if (state.joining && err && err.code) return state.joining.reject(err);
  if (err && err.code) showError(err);
});

client.onState(({ state: now, error, retryIn }) => {
  clearInterval(state.countdown);
  const waiting = () => (client.queued ? ` (${client.queued} waiting to be sent)` : "");
  if (now === "open") {
    setStatus("open", "Connected");
    $("reconnect").hidden = true;
    refreshMembers();
  } else if (now === "connecting" || now === "reconnecting") {
    const why = error ? `${error.message}. ` : "";
    if (retryIn) {
      const at = Date.now() + retryIn;
      const tick = () => {
        const left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
        setStatus(now, `${why}Reconnecting in ${left} s…${waiting()}`);
      };
      tick();
      state.countdown = setInterval(tick, 250);
    } else {
      setStatus(now, `${why}Reconnecting…${waiting()}`);
    }
  } else if (now === "closed") {
    setStatus("closed", error ? `Disconnected: ${error.message}` : "Disconnected");
    if (error && error.code !== "CANCELLED") showError(error);
    $("reconnect").hidden = false;
  }
});

// -- rendering -------------------------------------------------------------------------------

function li(text, className) {
  const item = document.createElement("li");
  item.textContent = text;
  if (className) item.className = className;
  return item;
}

// A message's identity and place: ids restart when the server does, so the time it was
// received is part of both (the list is in (ts, id) order whatever order messages arrive in)
const keyOf = (m) => `${m.ts}:${m.id}:${m.name}`;
const before = (a, b) => a.ts < b.ts || (a.ts === b.ts && a.id < b.id);

function addMessage(m) {
  const key = keyOf(m);
  if (state.seen.has(key)) return;
  state.seen.add(key);
  const item = document.createElement("li");
  item.className = "message";
  item.dataset.id = String(m.id);
  item.dataset.ts = String(m.ts);
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = new Date(m.ts).toLocaleTimeString();
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = m.name;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text;
  item.append(time, name, text);
  const list = $("messages");
  // usually the last: walk back from the end past the messages newer than this one
  let after = list.lastElementChild;
  while (after && (!after.classList.contains("message") || before(m, { ts: Number(after.dataset.ts), id: Number(after.dataset.id) }))) {
    after = after.previousElementSibling;
  }
  if (after) after.after(item);
  else list.prepend(item);
  scrollDown();
}

function addNotice(text) {
  $("messages").append(li(text, "notice"));
  scrollDown();
}

function scrollDown() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function clearRoom() {
  state.seen.clear();
  $("messages").replaceChildren();
  $("members").replaceChildren();
}

// A readable sentence for an error: the server's message, the first schema issue, and what to do.
function showError(err) {
  const item = document.createElement("li");
  const code = document.createElement("code");
  code.textContent = (err && err.code) || "ERROR";
  item.dataset.code = code.textContent;
  let text = (err && err.message) || "Something went wrong";
  const issues = err && err.details && err.details.issues;
  if (Array.isArray(issues) && issues.length) text = `${issues[0].message} (${(issues[0].path || []).join(".")})`;
  if (err && err.retryable && err.retryAfterMs) text += `; try again in ${Math.ceil(err.retryAfterMs / 1000)} s`;
  item.append(code, document.createTextNode(text));
  const list = $("errors");
  list.append(item);
  while (list.children.length > 3) list.firstElementChild.remove();
  setTimeout(() => item.remove(), 15000);
}

function setStatus(kind, text) {
  const status = $("status");
  status.dataset.state = kind;
  status.textContent = text;
}

function enterRoom(room) {
  state.room = room;
  $("text").disabled = false;
  $("send").disabled = false;
  $("leave").disabled = false;
  $("room-title").textContent = `#${room}`;
  $("text").focus();
  refreshMembers();
}

function leaveRoom() {
  state.room = null;
  $("text").disabled = true;
  $("send").disabled = true;
  $("leave").disabled = true;
  $("room-title").textContent = "Not in a room";
  $("members").replaceChildren();
}

// -- wiring ------------------------------------------------------------------------------------

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("nickname").value.trim();
  const room = $("room").value.trim();
  localStorage.setItem("wskit-chat-name", name);
  join(room, name);
});

// What is said while the connection is down waits in the client's offline queue and goes
// out after the room is rejoined.
$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim() || !state.room) return;
  client.send("SAY", { room: state.room, text }).catch(showError);
  $("text").value = "";
});

$("leave").addEventListener("click", () => {
  if (!state.room) return;
  client.send("LEAVE", { room: state.room }).catch(showError);
  client.positions.delete(topicOf(state.room));
  addNotice("You left the room");
  leaveRoom();
});

$("reconnect").addEventListener("click", () => client.connect().catch(() => {}));

$("nickname").value = localStorage.getItem("wskit-chat-name") || "";
window.wskitChat = state; // for poking around in the console (and the tests)
window.wskitClient = client;
setStatus("connecting", "Connecting…");
client.connect().catch(() => {}); // failures show through the state changes
