// The chat page's client: the browser's own WebSocket speaking the WS-Kit wire format.
// Every frame is one JSON object {type, meta, payload}; an RPC request carries
// meta.correlationId and its answer (reply, RPC_ERROR, progress) carries the same id.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const RPC_TIMEOUT_MS = 5000;

  const state = {
    ws: null,
    clientId: null,
    name: null, // our nickname
    room: null, // the room we are in (after its JOINED notice)
    joining: null, // the room we asked to join
    seen: new Set(), // ids of messages shown (history and live deliveries overlap)
    pending: new Map(), // correlationId -> {resolve, reject, timer}
    nextId: 1,
  };

  // -- wire ----------------------------------------------------------------------------

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/`;
  }

  function send(type, payload, meta) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      showError({ code: "UNAVAILABLE", message: "Not connected" });
      return false;
    }
    const frame = { type, meta: meta || {} };
    if (payload !== undefined) frame.payload = payload;
    state.ws.send(JSON.stringify(frame));
    return true;
  }

  // Call an RPC: resolves with the response frame, rejects with the RPC_ERROR payload.
  function request(type, payload, timeoutMs = RPC_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const correlationId = `${type.toLowerCase()}-${state.nextId++}`;
      const timer = setTimeout(() => {
        state.pending.delete(correlationId);
        reject({ code: "DEADLINE_EXCEEDED", message: `${type}: no answer within ${timeoutMs} ms` });
      }, timeoutMs + 1000); // the server answers DEADLINE_EXCEEDED itself at timeoutMs
      state.pending.set(correlationId, { resolve, reject, timer });
      if (!send(type, payload, { correlationId, timeoutMs })) {
        clearTimeout(timer);
        state.pending.delete(correlationId);
        reject({ code: "UNAVAILABLE", message: "Not connected" });
      }
    });
  }

  function connect() {
    setStatus("connecting", "Connecting…");
    $("reconnect").hidden = true;
    const ws = new WebSocket(socketUrl());
    state.ws = ws;
    ws.addEventListener("open", () => {
      setStatus("open", "Connected");
      const room = state.room || state.joining;
      if (room && state.name) join(room, state.name); // back where we were before the drop
    });
    ws.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        showError({ code: "CLIENT", message: "The server sent a frame that is not JSON" });
        return;
      }
      onFrame(msg);
    });
    ws.addEventListener("close", (event) => {
      if (state.ws !== ws) return;
      const why = event.reason ? `: ${event.reason}` : "";
      setStatus("closed", `Disconnected (${event.code}${why})`);
      $("reconnect").hidden = false;
      for (const [id, call] of state.pending) {
        clearTimeout(call.timer);
        call.reject({ code: "UNAVAILABLE", message: "Connection closed before the answer" });
        state.pending.delete(id);
      }
      if (state.room) state.joining = state.room;
      state.room = null;
      setJoined(false);
    });
  }

  function onFrame(msg) {
    const meta = msg.meta || {};
    const call = meta.correlationId !== undefined ? state.pending.get(meta.correlationId) : undefined;
    if (call) {
      if (msg.type === "$ws:rpc-progress") return; // non-terminal
      clearTimeout(call.timer);
      state.pending.delete(meta.correlationId);
      if (msg.type === "RPC_ERROR" || msg.type === "ERROR") call.reject(msg.payload);
      else call.resolve(msg);
      return;
    }
    const p = msg.payload;
    switch (msg.type) {
      case "WELCOME":
        state.clientId = p.client_id;
        setStatus("open", `Connected (rooms hold up to ${p.max_members})`);
        break;
      case "ROOM_MSG":
        if (p.room === state.room || p.room === state.joining) addMessage(p);
        break;
      case "JOINED":
        if (p.name === state.name && p.room === state.joining) {
          state.room = p.room;
          state.joining = null;
          setJoined(true);
        }
        if (p.room === state.room) {
          addNotice(`${p.name} joined (${p.members} here)`);
          refreshMembers();
        }
        break;
      case "LEFT":
        if (p.room !== state.room) break;
        if (p.name === state.name) {
          addNotice("You left the room");
          state.room = null;
          setJoined(false);
        } else {
          addNotice(`${p.name} left (${p.members} here)`);
          refreshMembers();
        }
        break;
      case "ERROR":
      case "RPC_ERROR":
        showError(p);
        if (state.joining && !state.room) state.joining = null; // the JOIN was refused
        break;
      default:
        break; // heartbeat acks and types this page does not know
    }
  }

  // -- chat ----------------------------------------------------------------------------

  async function join(room, name) {
    if (state.room !== room) {
      if (state.room) send("LEAVE", { room: state.room }); // its LEFT then matches no room of ours
      state.room = null;
      setJoined(false);
      clearRoom();
    }
    state.name = name;
    state.joining = room;
    if (!send("JOIN", { room, name })) return;
    try {
      // events of one connection run in order, so the room exists when HISTORY runs
      const res = await request("HISTORY", { room, limit: 50 });
      if (state.room === room || state.joining === room) showHistory(res.payload.messages);
    } catch (err) {
      // a refused JOIN was already shown; its HISTORY would fail for the same reason
      if (state.room === room || state.joining === room) showError(err);
    }
  }

  async function refreshMembers() {
    const room = state.room;
    if (!room) return;
    try {
      const res = await request("WHO", { room });
      if (state.room !== room) return;
      const list = $("members");
      list.replaceChildren(...res.payload.members.map((name) => li(name)));
    } catch (err) {
      showError(err);
    }
  }

  // -- rendering -----------------------------------------------------------------------

  function li(text, className) {
    const item = document.createElement("li");
    item.textContent = text;
    if (className) item.className = className;
    return item;
  }

  function messageItem(m) {
    const item = document.createElement("li");
    item.className = "message";
    item.dataset.id = String(m.id);
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
    return item;
  }

  function scrollDown() {
    const list = $("messages");
    list.scrollTop = list.scrollHeight;
  }

  function addMessage(m) {
    if (state.seen.has(m.id)) return;
    state.seen.add(m.id);
    $("messages").append(messageItem(m));
    scrollDown();
  }

  function addNotice(text) {
    $("messages").append(li(text, "notice"));
    scrollDown();
  }

  // History arrives after the JOIN, so messages said meanwhile may already be shown:
  // the older ones go first, duplicates are skipped.
  function showHistory(messages) {
    const fresh = messages.filter((m) => !state.seen.has(m.id));
    for (const m of fresh) state.seen.add(m.id);
    $("messages").prepend(...fresh.map(messageItem));
    scrollDown();
  }

  function clearRoom() {
    state.seen.clear();
    $("messages").replaceChildren();
    $("members").replaceChildren();
  }

  function showError(err) {
    const item = document.createElement("li");
    const code = document.createElement("code");
    code.textContent = err && err.code ? err.code : "ERROR";
    item.dataset.code = code.textContent;
    item.append(code, document.createTextNode((err && err.message) || "Unknown error"));
    const issues = err && err.details && err.details.issues;
    if (Array.isArray(issues) && issues.length) {
      const first = issues[0];
      item.append(document.createTextNode(` (${(first.path || []).join(".")}: ${first.message})`));
    }
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

  function setJoined(joined) {
    $("text").disabled = !joined;
    $("send").disabled = !joined;
    $("leave").disabled = !joined;
    $("room-title").textContent = joined ? `#${state.room}` : "Not in a room";
    if (!joined) $("members").replaceChildren();
    if (joined) $("text").focus();
  }

  // -- wiring --------------------------------------------------------------------------

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("nickname").value.trim();
    const room = $("room").value.trim();
    localStorage.setItem("wskit-chat-name", name);
    join(room, name);
  });

  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value;
    if (!text.trim() || !state.room) return;
    if (send("SAY", { room: state.room, text })) $("text").value = "";
  });

  $("leave").addEventListener("click", () => {
    if (state.room) send("LEAVE", { room: state.room });
  });

  $("reconnect").addEventListener("click", connect);

  $("nickname").value = localStorage.getItem("wskit-chat-name") || "";
  window.wskitChat = state; // for poking around in the console
  connect();
})();
