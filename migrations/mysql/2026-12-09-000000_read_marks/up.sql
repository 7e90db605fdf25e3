-- Read receipts (issue 20): how far each user has READ each conversation (MARK_READ), beside
-- how far it received it (ConvCursor). Written at once on each MARK_READ (a user action,
-- debounced by the clients), only forward. Keyed like ConvCursor, so the lookups of a
-- user's marks (LOGIN, LIST) and of given (user, conversation) pairs (READS, receipts at
-- login) read the primary key. Only added: the previous release neither reads nor writes it.

-- step: ReadMark
CREATE TABLE `ReadMark` (
    `userid` INT NOT NULL,
    `conv` BIGINT NOT NULL,
    `seq` BIGINT NOT NULL,
    PRIMARY KEY (`userid`, `conv`),
    CONSTRAINT `fk_ReadMark_userid` FOREIGN KEY (`userid`) REFERENCES `User` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
