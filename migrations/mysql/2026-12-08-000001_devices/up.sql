-- Several sessions per user (issue 20): each session's own cursors, so that a RESUME
-- brings back exactly that session (the user's cursor, ConvCursor, is the furthest any
-- session acknowledged). Keyed by the session's resume token hash (ResumeToken.token);
-- a row with conv = 0 marks a session that has cursors of its own. Only added: the
-- previous release neither reads nor writes it.

-- step: SessionCursor
CREATE TABLE `SessionCursor` (
    `token` CHAR(64) NOT NULL,
    `conv` BIGINT NOT NULL,
    `seq` BIGINT NOT NULL,
    PRIMARY KEY (`token`, `conv`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
