-- 0003_chat: the chat domain — contacts, chats, messages, operator status, offers (with the
-- durable accept timers), completion timers and the outbox of messages to send.
--
-- Conventions as in 0001_init: timestamps are RFC 3339 UTC text with millisecond precision, so
-- they compare and sort as text; no BEGIN/COMMIT (the store runs each file in a transaction).
-- Names of channels, queues and operators are config names (`metadata.name`), kept as text so
-- history survives the removal of the object from the config (CH-10, CH-11).

-- A person on the other side of a channel, found or created from the channel's identity
-- (Telegram user id, Messenger PSID, WhatsApp number, the api channel's `from.id`).
CREATE TABLE chat_contacts (
    id          INTEGER PRIMARY KEY,
    channel     TEXT    NOT NULL,
    external_id TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    email       TEXT,
    phone       TEXT,
    created_at  TEXT    NOT NULL,
    UNIQUE (channel, external_id)
);

-- A conversation: offered (waiting for an operator to accept; it may have no offer yet when
-- nobody is available) -> active (an operator has it) -> completed.
CREATE TABLE chats (
    id             INTEGER PRIMARY KEY,
    channel        TEXT    NOT NULL,
    queue          TEXT    NOT NULL,
    contact_id     INTEGER NOT NULL REFERENCES chat_contacts (id),
    state          TEXT    NOT NULL CHECK (state IN ('offered', 'active', 'completed')),
    -- The operator (User name) once accepted; kept after completion.
    operator       TEXT,
    created_at     TEXT    NOT NULL,
    -- When the chat was first offered or assigned to an operator (chat_assignment_seconds).
    distributed_at TEXT,
    accepted_at    TEXT,
    completed_at   TEXT,
    -- Who completed it: the operator, or the completion timeout.
    completed_by   TEXT    CHECK (completed_by IN ('operator', 'timeout')),
    last_out_at    TEXT,
    -- Durable completion timer: last outgoing message + the queue's completionTimeout (CH-05).
    complete_at    TEXT,
    -- An offered chat has no operator yet, an active one has; a completed chat keeps the
    -- operator it had (none when it was completed before anyone accepted it).
    CHECK (state <> 'offered' OR operator IS NULL),
    CHECK (state <> 'active' OR operator IS NOT NULL),
    CHECK ((state = 'completed') = (completed_at IS NOT NULL))
);
-- At most one open chat per contact: a message after completion opens a new chat (CH-05).
CREATE UNIQUE INDEX chats_one_open_per_contact ON chats (contact_id) WHERE state <> 'completed';
CREATE INDEX chats_by_queue_state ON chats (queue, state, id);
CREATE INDEX chats_by_operator_state ON chats (operator, state);
CREATE INDEX chats_by_complete_at ON chats (complete_at) WHERE complete_at IS NOT NULL;

-- Every message of every chat, kept (CH-11).
CREATE TABLE chat_messages (
    id          INTEGER PRIMARY KEY,
    chat_id     INTEGER NOT NULL REFERENCES chats (id),
    channel     TEXT    NOT NULL,
    direction   TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    -- The provider's id of an inbound message (api `messageId`, Telegram update_id, ...).
    -- NULL for outgoing messages; SQLite treats NULLs as distinct, so they never clash.
    provider_id TEXT,
    -- The operator who wrote an outgoing message.
    author      TEXT,
    text        TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    -- Deduplication of deliveries is this constraint, not an in-memory set.
    UNIQUE (channel, provider_id)
);
CREATE INDEX chat_messages_by_chat ON chat_messages (chat_id, id);

-- Operator status per user. No row means inactive: an operator receives chats only after
-- setting themselves active.
CREATE TABLE chat_operators (
    name              TEXT PRIMARY KEY,
    status            TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    status_changed_at TEXT NOT NULL,
    -- When the operator last took (accepted) a chat: the leastBusy tie-break (CH-04).
    last_assigned_at  TEXT
);

-- Open offers of `offered` chats. toAll offers one chat to many operators; leastBusy assigns
-- it to one (`exclusive`), which counts against that operator's capacity and carries the
-- durable accept deadline.
CREATE TABLE chat_offers (
    chat_id    INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    operator   TEXT    NOT NULL,
    exclusive  INTEGER NOT NULL CHECK (exclusive IN (0, 1)),
    offered_at TEXT    NOT NULL,
    deadline   TEXT,
    PRIMARY KEY (chat_id, operator)
);
-- (operator, exclusive): an operator's load counts only their exclusive offers, which must not
-- mean walking every toAll offer they hold (one per waiting chat of their queues).
CREATE INDEX chat_offers_by_operator ON chat_offers (operator, exclusive);
CREATE INDEX chat_offers_by_deadline ON chat_offers (deadline) WHERE deadline IS NOT NULL;

-- Outgoing messages to deliver through their channel, retried with backoff until sent or
-- given up. Written in the same transaction as the message, so none is lost.
CREATE TABLE chat_outbox (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL UNIQUE REFERENCES chat_messages (id),
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT,
    last_error      TEXT,
    sent_at         TEXT
);
CREATE INDEX chat_outbox_due ON chat_outbox (next_attempt_at) WHERE state = 'pending';
