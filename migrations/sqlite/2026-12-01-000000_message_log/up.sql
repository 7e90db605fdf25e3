-- The message log, as migrations/mysql/2026-12-01-000000_message_log in SQLite's dialect.

CREATE TABLE "Conversation" (
    id BIGINT PRIMARY KEY NOT NULL,
    userlo INTEGER NULL REFERENCES "User" (id) ON DELETE CASCADE,
    userhi INTEGER NULL REFERENCES "User" (id) ON DELETE CASCADE,
    groupid INTEGER NULL REFERENCES "AllGroup" (id) ON DELETE CASCADE,
    lastseq BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX "ix_Conversation_userlo" ON "Conversation" (userlo);
CREATE INDEX "ix_Conversation_userhi" ON "Conversation" (userhi);
CREATE INDEX "ix_Conversation_groupid" ON "Conversation" (groupid);

CREATE TABLE "Message" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conv BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    sender INTEGER NOT NULL,
    sendername VARCHAR(50) NOT NULL,
    cid VARCHAR(64) NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (conv, seq),
    UNIQUE (sender, cid)
);
CREATE INDEX "ix_Message_created_at" ON "Message" (created_at);

CREATE TABLE "ConvCursor" (
    userid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    conv BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (userid, conv)
);

CREATE TABLE "ResumeToken" (
    token CHAR(64) PRIMARY KEY NOT NULL,
    userid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX "ix_ResumeToken_expires_at" ON "ResumeToken" (expires_at);
