-- 0004_mail_oauth: OAuth 2.0 tokens obtained at run time for a mailbox (EP-04..06).
--
-- Append-only, like every migration. (0003 is reserved for chat: on merge, chat's 0003 goes
-- before this file in the list.) Token values are never stored in clear: `access_token` and
-- `refresh_token` are XChaCha20-Poly1305 sealed blobs (nonce ‖ ciphertext, see
-- src/mail/oauth.rs) under a key kept outside this file. A NULL refresh token means "use the
-- mailbox's configured oauth2RefreshToken".
CREATE TABLE mail_oauth_tokens (
    mailbox       TEXT PRIMARY KEY,
    access_token  BLOB,
    expires_at    TEXT,
    refresh_token BLOB,
    updated_at    TEXT NOT NULL
);
