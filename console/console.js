// The operator console: sign-in with an API token, the live chat lists, one open chat, the
// supervisor's view. Everything the server says goes into the page as text (textContent and
// text nodes), never as markup.

import { ApiError, all, call, clearToken, setToken, token } from "./api.js";
import { connect } from "./sse.js";

const $ = (id) => document.getElementById(id);

/** An element with attributes and children; string children become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** How many messages one page of a chat holds. */
const PAGE = 50;

const state = {
  me: null,
  supervisor: false,
  chats: new Map(), // id -> chat from /api/v1/chats (offered and active)
  unread: new Map(), // id -> inbound messages not seen
  seenOffers: new Set(), // chats already cued (sound + highlight)
  fresh: new Set(), // offered chats highlighted until opened
  operators: [],
  open: null, // { id, chat, messages: Map, start, total }
  stream: null,
  sound: null, // { context, buffer } or null
  refreshing: null,
  refreshAgain: false,
};

function announce(text) {
  const node = $("announcer");
  node.textContent = "";
  // A new text node each time, so the same words are announced again.
  node.append(document.createTextNode(text));
}

function bump(name) {
  const key = name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  document.body.dataset[key] = String(Number(document.body.dataset[key] || 0) + 1);
}

function waited(since) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m}:${s}`;
}

function tick() {
  for (const node of document.querySelectorAll("[data-since]")) {
    node.textContent = `waiting ${waited(node.dataset.since)}`;
  }
}

function lastText(chat) {
  const messages = chat.messages || [];
  return messages.length ? messages[messages.length - 1].text : "";
}

// ---- sign-in ---------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  // The click is the user gesture browsers want before a page may play sound.
  prepareAudio();
  setToken(value);
  $("token").value = "";
  try {
    await start();
  } catch (error) {
    clearToken();
    $("sign-in-error").textContent =
      error instanceof ApiError && error.status === 401 ? "That token is not valid." : `Sign-in failed: ${error.message}`;
  }
}

function signOut(message) {
  if (state.stream) state.stream.stop();
  state.stream = null;
  clearToken();
  Object.assign(state, { me: null, supervisor: false, open: null, operators: [] });
  state.chats.clear();
  state.unread.clear();
  state.seenOffers.clear();
  state.fresh.clear();
  $("console-view").hidden = true;
  $("account").hidden = true;
  $("sign-in-view").hidden = false;
  $("connection").dataset.state = "off";
  $("connection").textContent = "Signed out";
  $("sign-in-error").textContent = message || "";
  document.title = "Switchboard console";
  $("token").focus();
}

async function start() {
  const me = await call("GET", "/api/v1/me");
  state.me = me;
  state.supervisor = (me.rights || []).includes("CanManageChats");
  $("sign-in-error").textContent = "";
  $("who").textContent = me.displayName || me.name;
  const operator = (me.queues || []).length > 0;
  $("status-label").hidden = !operator;
  // A supervisor in no queue is offered nothing: the lists of offered and own chats go.
  document.querySelector("nav.lists").hidden = !operator;
  $("status").value = me.status;
  $("supervisor").hidden = !state.supervisor;
  $("console-view").classList.toggle("operator", !state.supervisor);
  $("sign-in-view").hidden = true;
  $("account").hidden = false;
  $("console-view").hidden = false;
  loadSound();
  state.stream = connect({
    token,
    onEvent,
    onOpen: reconcile,
    onState(s, delay) {
      $("connection").dataset.state = s;
      $("connection").textContent = s === "live" ? "Live" : `Reconnecting in ${Math.ceil(delay / 1000)} s`;
    },
    onDenied() {
      signOut("Your token is no longer accepted; sign in again.");
    },
  });
}

// ---- the notification sound (CH-08) ----------------------------------------------------

function prepareAudio() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return;
  if (!state.audio) state.audio = new Context();
  state.audio.resume().catch(() => {});
}

async function loadSound() {
  state.sound = null;
  if (!state.audio) prepareAudio();
  try {
    const response = await fetch("/api/v1/notification-sound", { headers: { Authorization: `Bearer ${token()}` } });
    if (!response.ok) return; // none configured
    const bytes = await response.arrayBuffer();
    // Decoded and played through Web Audio: no blob: URL, which the page's policy forbids.
    state.sound = await state.audio.decodeAudioData(bytes);
  } catch {
    state.sound = null;
  }
}

function playSound() {
  if (!state.sound || !state.audio) return;
  try {
    const source = state.audio.createBufferSource();
    source.buffer = state.sound;
    source.connect(state.audio.destination);
    source.start();
    bump("sound-plays");
  } catch {
    // A browser that refuses to play still shows the visual cue.
  }
}

function cue(chat) {
  state.seenOffers.add(chat.id);
  state.fresh.add(chat.id);
  bump("offer-cues");
  playSound();
  announce(`New chat offered from ${chat.contact.name} in ${chat.queue}`);
}

// ---- the lists -------------------------------------------------------------------------

/** Re-reads the chats (and, for a supervisor, the operators) and the open chat. */
async function reconcile() {
  if (state.refreshing) {
    state.refreshAgain = true;
    return state.refreshing;
  }
  state.refreshing = (async () => {
    do {
      state.refreshAgain = false;
      await readLists();
      if (state.open) await reloadOpen();
    } while (state.refreshAgain);
  })();
  try {
    await state.refreshing;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) signOut("Your token is no longer accepted; sign in again.");
  } finally {
    state.refreshing = null;
  }
}

async function readLists() {
  const [offered, active, operators] = await Promise.all([
    all("/api/v1/chats?state=offered"),
    all("/api/v1/chats?state=active"),
    state.supervisor ? all("/api/v1/operators") : Promise.resolve([]),
  ]);
  state.chats = new Map([...offered, ...active].map((c) => [c.id, c]));
  state.operators = operators;
  for (const chat of offered) {
    if ((chat.offeredTo || []).includes(state.me.name) && !state.seenOffers.has(chat.id)) cue(chat);
  }
  for (const id of [...state.unread.keys()]) if (!state.chats.has(id)) state.unread.delete(id);
  render();
}

function offeredToMe() {
  return [...state.chats.values()].filter((c) => c.state === "offered" && (c.offeredTo || []).includes(state.me.name));
}

function mine() {
  return [...state.chats.values()].filter((c) => c.state === "active" && c.operator === state.me.name);
}

function chatRow(chat, { waiting, unread }) {
  const open = state.open && state.open.id === chat.id;
  const detail = waiting
    ? el("span", { class: "detail", dataset: { since: chat.createdAt } }, `waiting ${waited(chat.createdAt)}`)
    : el("span", { class: "detail" }, lastText(chat));
  const count = unread ? state.unread.get(chat.id) || 0 : 0;
  const label = [chat.contact.name, chat.queue, count ? `${count} unread` : null].filter(Boolean).join(", ");
  return el(
    "li",
    { class: state.fresh.has(chat.id) ? "new" : null, dataset: { chat: chat.id } },
    el(
      "button",
      { type: "button", "aria-current": open ? "true" : null, "aria-label": label, onclick: () => openChat(chat.id) },
      el("span", { class: "name" }, chat.contact.name),
      count ? el("span", { class: "unread", "aria-hidden": "true" }, String(count)) : null,
      el("span", { class: "detail" }, `${chat.queue} · ${chat.channel}`),
      detail,
    ),
  );
}

function render() {
  const offered = offeredToMe();
  const active = mine();
  $("offered").replaceChildren(...offered.map((c) => chatRow(c, { waiting: true })));
  $("mine").replaceChildren(...active.map((c) => chatRow(c, { unread: true })));
  $("offered-count").textContent = String(offered.length);
  $("mine-count").textContent = String(active.length);
  const unread = [...state.unread.values()].reduce((a, b) => a + b, 0);
  const badge = offered.length + unread;
  document.title = badge ? `(${badge}) Switchboard console` : "Switchboard console";
  if (state.supervisor) renderSupervisor();
  renderOpenHeader();
}

function renderSupervisor() {
  const waiting = [...state.chats.values()].filter((c) => c.state === "offered");
  const queues = new Set(waiting.map((c) => c.queue));
  for (const o of state.operators) for (const q of o.queues) queues.add(q.queue);
  const tables = [...queues].sort().map((queue) => {
    const chats = waiting.filter((c) => c.queue === queue);
    const busy = state.operators.filter((o) => o.status === "active" && o.queues.some((q) => q.queue === queue)).length;
    return el(
      "table",
      { dataset: { queue } },
      el("caption", {}, `${queue}: ${chats.length} waiting, ${busy} operators active`),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Contact"), el("th", { scope: "col" }, "Waiting"))),
      el(
        "tbody",
        {},
        ...chats.map((c) =>
          el(
            "tr",
            { dataset: { chat: c.id } },
            el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => openChat(c.id) }, c.contact.name)),
            el("td", { dataset: { since: c.createdAt } }, `waiting ${waited(c.createdAt)}`),
          ),
        ),
      ),
    );
  });
  $("queues").replaceChildren(...tables);
  $("operators").replaceChildren(
    ...state.operators.map((o) => {
      const load = o.queues.reduce((n, q) => n + q.activeChats, 0);
      return el(
        "li",
        { dataset: { operator: o.name, status: o.status } },
        el("span", { class: "name" }, o.displayName),
        " — ",
        el("span", { class: o.status }, o.status),
        `, ${load} active chat${load === 1 ? "" : "s"}`,
      );
    }),
  );
}

// ---- the open chat ---------------------------------------------------------------------

async function openChat(id) {
  state.fresh.delete(id);
  state.unread.delete(id);
  state.open = { id, chat: null, messages: new Map(), start: 0, total: 0, replies: null, actions: null };
  $("messages").replaceChildren();
  $("runs").replaceChildren();
  $("chat-status").textContent = "";
  await reloadOpen();
  render();
  $("chat-heading").focus();
}

/** Reads the newest page of the open chat and merges it (messages by id: none twice). */
async function reloadOpen() {
  const open = state.open;
  let chat = await call("GET", `/api/v1/chats/${open.id}?limit=${PAGE}`);
  // The cursor of this API is the offset of the page's first message, oldest first.
  if (chat.messagesTotal > PAGE) {
    chat = await call("GET", `/api/v1/chats/${open.id}?limit=${PAGE}&cursor=${chat.messagesTotal - PAGE}`);
    open.start = open.messages.size ? Math.min(open.start, chat.messagesTotal - PAGE) : chat.messagesTotal - PAGE;
  } else {
    open.start = 0;
  }
  if (state.open !== open) return;
  open.chat = chat;
  open.total = chat.messagesTotal;
  for (const m of chat.messages) open.messages.set(m.id, m);
  await loadChoices(open);
  renderOpen();
}

async function older() {
  const open = state.open;
  if (!open || open.start === 0) return;
  const from = Math.max(0, open.start - PAGE);
  const chat = await call("GET", `/api/v1/chats/${open.id}?limit=${open.start - from}&cursor=${from}`);
  for (const m of chat.messages) open.messages.set(m.id, m);
  open.start = from;
  renderOpen();
}

async function loadChoices(open) {
  const chat = open.chat;
  if (open.replies === null) {
    const q = new URLSearchParams({ queue: chat.queue });
    if (chat.language) q.set("language", chat.language);
    open.replies = await all(`/api/v1/quick-replies?${q}`);
  }
  if (open.actions === null) {
    open.actions = await all(`/api/v1/chat-actions?queue=${encodeURIComponent(chat.queue)}`);
  }
}

function messageItem(m) {
  return el(
    "li",
    { class: m.direction, dataset: { message: m.id } },
    el("span", { class: "sr-only" }, m.direction === "in" ? "Visitor: " : "Operator: "),
    el("span", { class: "text" }, m.text),
    el("time", { datetime: m.at }, new Date(m.at).toLocaleString()),
  );
}

function sortedMessages(open) {
  return [...open.messages.values()].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : Number(a.id) - Number(b.id)));
}

function renderOpen() {
  const open = state.open;
  if (!open || !open.chat) return;
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const shown = new Set([...list.children].map((li) => li.dataset.message));
  const messages = sortedMessages(open);
  if (messages.every((m, i) => list.children[i] && list.children[i].dataset.message === m.id) && messages.length === list.children.length) {
    // nothing new
  } else if ([...shown].every((id) => open.messages.has(id)) && messages.slice(0, shown.size).every((m) => shown.has(m.id))) {
    // Only newer messages: append them, so screen readers announce just those.
    for (const m of messages.slice(shown.size)) list.append(messageItem(m));
  } else {
    list.replaceChildren(...messages.map(messageItem));
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
  $("older").hidden = open.start === 0;
  const chat = open.chat;
  $("quick-replies").replaceChildren(
    ...open.replies.map((r) =>
      el(
        "button",
        {
          type: "button",
          dataset: { reply: r.name },
          onclick: () => {
            $("reply-text").value = r.text;
            $("reply-text").focus();
          },
        },
        r.text,
      ),
    ),
  );
  const select = $("action");
  const current = select.value;
  select.replaceChildren(...open.actions.map((a) => el("option", { value: a.name }, a.title)));
  if (current) select.value = current;
  $("runs").replaceChildren(
    ...(chat.actions || []).map((r) =>
      el("li", { dataset: { run: r.id, state: r.state } }, `${r.action}: ${r.state}${r.caseId ? ` (case ${r.caseId})` : ""}${r.lastError ? ` — ${r.lastError}` : ""}`),
    ),
  );
  renderOpenHeader();
}

function renderOpenHeader() {
  const open = state.open;
  if (!open || !open.chat) {
    $("chat-body").hidden = true;
    return;
  }
  const listed = state.chats.get(open.id);
  const chat = listed ? { ...open.chat, state: listed.state, operator: listed.operator, offeredTo: listed.offeredTo } : open.chat;
  $("chat-body").hidden = false;
  $("chat-heading").textContent = `Chat with ${chat.contact.name}`;
  $("chat-meta").textContent = `${chat.queue} · ${chat.channel}${chat.language ? ` · ${chat.language}` : ""} · ${chat.state}${chat.operator ? ` · ${chat.operator}` : ""}`;
  $("chat-body").dataset.state = chat.state;
  const me = state.me.name;
  $("accept").hidden = !(chat.state === "offered" && (chat.offeredTo || []).includes(me));
  const working = chat.state === "active" && (chat.operator === me || state.supervisor);
  $("complete").hidden = !working;
  $("reply").hidden = !(chat.state === "active" && chat.operator === me);
  $("actions-box").hidden = !(chat.state !== "completed" && open.actions && open.actions.length > 0);
}

async function act(what, fn) {
  try {
    $("chat-status").textContent = "";
    await fn();
  } catch (error) {
    $("chat-status").textContent = `${what} failed: ${error.message}`;
  }
}

async function accept() {
  const open = state.open;
  await act("Accept", async () => {
    await call("POST", `/api/v1/chats/${open.id}/accept`);
    $("chat-status").textContent = "Accepted.";
    await reconcile();
    $("reply-text").focus();
  });
}

async function complete() {
  const open = state.open;
  await act("Complete", async () => {
    await call("POST", `/api/v1/chats/${open.id}/complete`);
    $("chat-status").textContent = "Completed.";
    await reconcile();
  });
}

async function send(event) {
  event.preventDefault();
  const open = state.open;
  const text = $("reply-text").value;
  if (!text.trim()) return;
  await act("Sending", async () => {
    const message = await call("POST", `/api/v1/chats/${open.id}/messages`, { text });
    open.messages.set(message.id, message);
    $("reply-text").value = "";
    renderOpen();
  });
}

async function runAction() {
  const open = state.open;
  const action = $("action").value;
  if (!action) return;
  await act("The action", async () => {
    const run = await call("POST", `/api/v1/chats/${open.id}/actions/${encodeURIComponent(action)}`);
    $("chat-status").textContent = `${run.action}: ${run.state}${run.caseId ? ` (case ${run.caseId})` : ""}`;
    await reloadOpen();
  });
}

async function setStatus() {
  const wanted = $("status").value;
  try {
    const answer = await call("PUT", "/api/v1/operators/me/status", { status: wanted });
    state.me.status = answer.status;
    $("status").value = answer.status;
    announce(`Your status is ${answer.status}`);
  } catch (error) {
    $("status").value = state.me.status;
    announce(`The status could not be changed: ${error.message}`);
  }
}

// ---- events ----------------------------------------------------------------------------

function onEvent(name, data) {
  switch (name) {
    case "chat.message": {
      const open = state.open;
      if (open && open.id === data.chatId) {
        open.messages.set(data.message.id, data.message);
        renderOpen();
      } else if (data.message.direction === "in" && state.chats.has(data.chatId)) {
        state.unread.set(data.chatId, (state.unread.get(data.chatId) || 0) + 1);
      }
      const chat = state.chats.get(data.chatId);
      if (chat) {
        chat.messages = [...(chat.messages || []).filter((m) => m.id !== data.message.id), data.message];
        render();
      } else {
        reconcile();
      }
      break;
    }
    case "operator.status":
      if (data.operator === state.me.name) {
        state.me.status = data.status;
        $("status").value = data.status;
        announce(data.reason ? `Your status is now ${data.status}: ${data.reason}` : `Your status is now ${data.status}`);
      }
      if (state.supervisor) reconcile();
      break;
    case "chat.action":
      if (state.open && state.open.id === data.chatId) reconcile();
      break;
    case "chat.offered":
    case "chat.assigned":
    case "chat.completed":
      reconcile();
      break;
    default:
      break;
  }
}

// ---- start -----------------------------------------------------------------------------

function init() {
  $("sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("status").addEventListener("change", setStatus);
  $("accept").addEventListener("click", accept);
  $("complete").addEventListener("click", complete);
  $("run-action").addEventListener("click", runAction);
  $("older").addEventListener("click", () => older().catch((e) => ($("chat-status").textContent = e.message)));
  $("reply").addEventListener("submit", send);
  setInterval(tick, 1000);
  if (token()) {
    start().catch(() => signOut());
  } else {
    signOut();
  }
}

init();
