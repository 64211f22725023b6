-- 0007_chat_messenger_handback: Messenger threads handed back to the bot (FB-03).
--
-- Append-only; conventions as in 0003_chat. When a chat on a Messenger thread the bot passed
-- to Switchboard completes, Switchboard passes the thread back to the primary receiver
-- (Graph `POST /me/pass_thread_control`). The call is queued here in the transaction that
-- completes the chat, and made by the outbox task with the outbox's backoff: `pending` until
-- Graph accepts it (`sent`) or it is given up (`failed`, with `last_error`). The contact and
-- channel come from the chat.
CREATE TABLE messenger_handbacks (
    id              INTEGER PRIMARY KEY,
    chat_id         INTEGER NOT NULL UNIQUE REFERENCES chats (id),
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    finished_at     TEXT,
    CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX messenger_handbacks_due ON messenger_handbacks (next_attempt_at)
    WHERE state = 'pending';
