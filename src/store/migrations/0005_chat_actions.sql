-- 0005_chat_actions: chat actions (CH-07) — the cases the built-in `createCase` makes, and one
-- row per action run, which is also the durable queue of webhook actions still to deliver.
--
-- Conventions as in 0003_chat: RFC 3339 UTC text timestamps; action and queue names are config
-- names kept as text, so the record survives the removal of the object from the config.

-- A case created from a chat, linked to the chat and its contact.
CREATE TABLE chat_cases (
    id         INTEGER PRIMARY KEY,
    chat_id    INTEGER NOT NULL REFERENCES chats (id),
    contact_id INTEGER NOT NULL REFERENCES chat_contacts (id),
    queue      TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);
CREATE INDEX chat_cases_by_chat ON chat_cases (chat_id);

-- One run of a ChatAction on a chat. A builtin run is `done` when it is stored; a webhook run
-- is `pending` until its receiver answers 2xx (`done`) or it is given up (`failed`), retried
-- with the outbox's backoff in between.
CREATE TABLE chat_action_runs (
    id              INTEGER PRIMARY KEY,
    chat_id         INTEGER NOT NULL REFERENCES chats (id),
    action          TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('createCase', 'webhook')),
    operator        TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT,
    last_error      TEXT,
    case_id         INTEGER REFERENCES chat_cases (id),
    created_at      TEXT    NOT NULL,
    finished_at     TEXT,
    CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX chat_action_runs_by_chat ON chat_action_runs (chat_id, id);
CREATE INDEX chat_action_runs_due ON chat_action_runs (next_attempt_at) WHERE state = 'pending';

-- Messenger Handover Protocol (FB-03). A chat with `bot = 1` is the history of a conversation
-- an external bot (the primary receiver) handled: stored completed, with no operator, never
-- routed. Its messages keep the same deduplication as any other.
ALTER TABLE chats ADD COLUMN bot INTEGER NOT NULL DEFAULT 0 CHECK (bot IN (0, 1));
CREATE INDEX chats_bot_history ON chats (contact_id, id) WHERE bot = 1;

-- Who owns each Messenger thread of a channel with `handover`: the primary receiver (the
-- bot) until it passes control to us. No row means the primary receiver.
CREATE TABLE messenger_threads (
    channel    TEXT NOT NULL,
    psid       TEXT NOT NULL,
    owner      TEXT NOT NULL CHECK (owner IN ('primary', 'us')),
    changed_at TEXT NOT NULL,
    PRIMARY KEY (channel, psid)
);
