-- The message log (ARCHITECTURE.md, "The message log"): every chat stored once,
-- before its sender's ack, with its place in its conversation; the recipients'
-- cursors; resume tokens. OfflineMessage stays for rows older versions wrote.

-- step: Conversation
-- One row per conversation: `id` is the key chat-proto's ConvId computes
-- (lo << 32 | hi for two users, -groupid for a group); `lastseq` is the
-- conversation's sequence counter, bumped under its row lock in the append.
CREATE TABLE `Conversation` (
    `id` BIGINT NOT NULL,
    `userlo` INT NULL,
    `userhi` INT NULL,
    `groupid` INT NULL,
    `lastseq` BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`id`),
    KEY `ix_Conversation_userlo` (`userlo`),
    KEY `ix_Conversation_userhi` (`userhi`),
    KEY `ix_Conversation_groupid` (`groupid`),
    CONSTRAINT `fk_Conversation_userlo` FOREIGN KEY (`userlo`) REFERENCES `User` (`id`) ON DELETE CASCADE,
    CONSTRAINT `fk_Conversation_userhi` FOREIGN KEY (`userhi`) REFERENCES `User` (`id`) ON DELETE CASCADE,
    CONSTRAINT `fk_Conversation_groupid` FOREIGN KEY (`groupid`) REFERENCES `AllGroup` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- step: Message
-- One row per message, group messages included (never one per member).
-- No foreign keys: the hot path inserts here, and conversations are checked when opened.
CREATE TABLE `Message` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `conv` BIGINT NOT NULL,
    `seq` BIGINT NOT NULL,
    `sender` INT NOT NULL,
    `sendername` VARCHAR(50) NOT NULL,
    -- the client's message id, for idempotent resends
    `cid` VARCHAR(64) NULL,
    `body` MEDIUMTEXT NOT NULL,
    -- unix milliseconds
    `created_at` BIGINT NOT NULL,
    PRIMARY KEY (`id`),
    UNIQUE KEY `uq_Message_conv_seq` (`conv`, `seq`),
    UNIQUE KEY `uq_Message_sender_cid` (`sender`, `cid`),
    KEY `ix_Message_created_at` (`created_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- step: ConvCursor
-- How far each user acknowledged each conversation (written lazily, only forward).
CREATE TABLE `ConvCursor` (
    `userid` INT NOT NULL,
    `conv` BIGINT NOT NULL,
    `seq` BIGINT NOT NULL,
    PRIMARY KEY (`userid`, `conv`),
    CONSTRAINT `fk_ConvCursor_userid` FOREIGN KEY (`userid`) REFERENCES `User` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- step: ResumeToken
-- Resume tokens, by their SHA-256 (the token itself is never stored).
CREATE TABLE `ResumeToken` (
    `token` CHAR(64) NOT NULL,
    `userid` INT NOT NULL,
    `expires_at` BIGINT NOT NULL,
    PRIMARY KEY (`token`),
    KEY `ix_ResumeToken_expires_at` (`expires_at`),
    CONSTRAINT `fk_ResumeToken_userid` FOREIGN KEY (`userid`) REFERENCES `User` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
