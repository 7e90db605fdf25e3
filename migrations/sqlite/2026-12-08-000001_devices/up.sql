-- Several sessions per user (issue 20): each session's own cursors (see the MySQL migration).
CREATE TABLE "SessionCursor" (
    token CHAR(64) NOT NULL,
    conv BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (token, conv)
);
-- "Log out everywhere" deletes a user's tokens (MySQL has this index through the foreign key).
CREATE INDEX "ix_ResumeToken_userid" ON "ResumeToken" (userid);
