-- The append of a batch that holds one new message (ARCHITECTURE.md, "The cost of an
-- append"): what a quiet node commits nearly every time. chat_append_v1 takes any batch
-- as JSON and runs three JSON_TABLE statements and a sort through temporary files per
-- CALL whatever the batch holds; this one takes the message as scalars and runs two
-- single-row INSERTs, which costs MariaDB a quarter to a third less CPU per commit
-- (bench/README.md, "One message per CALL"). Only added: the previous release keeps
-- calling chat_append_v1, and both order a conversation's appends by its row lock.
--
-- Answers one row: seq = the message's seq in its conversation, mid = its id. A
-- (sender, cid) stored before fails the CALL with a duplicate-key error and changes
-- nothing, as chat_append_v1 does; cid "" = none.
--
-- LAST_INSERT_ID(expr) hands the new counter back from the upsert itself (set by the
-- VALUES for a new conversation, by the UPDATE for an existing one), so no SELECT reads it.

-- step: chat_append_one_v1
DROP PROCEDURE IF EXISTS chat_append_one_v1;

CREATE PROCEDURE chat_append_one_v1(
    IN p_conv BIGINT,
    IN p_sender INT,
    IN p_sendername VARCHAR(50) CHARACTER SET utf8mb4,
    IN p_cid VARCHAR(64) CHARACTER SET utf8mb4,
    IN p_body LONGTEXT CHARACTER SET utf8mb4,
    IN p_created_at BIGINT
)
MODIFIES SQL DATA
BEGIN
    DECLARE s BIGINT;
    DECLARE mid BIGINT;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        RESIGNAL;
    END;

    START TRANSACTION;

    INSERT INTO `Conversation` (`id`, `userlo`, `userhi`, `groupid`, `lastseq`)
        VALUES (p_conv,
                IF(p_conv > 0, p_conv >> 32, NULL),
                IF(p_conv > 0, p_conv & 4294967295, NULL),
                IF(p_conv < 0, -p_conv, NULL),
                LAST_INSERT_ID(1))
    ON DUPLICATE KEY UPDATE `lastseq` = LAST_INSERT_ID(`lastseq` + 1);
    SET s = LAST_INSERT_ID();

    INSERT INTO `Message` (`conv`, `seq`, `sender`, `sendername`, `cid`, `body`, `created_at`)
        VALUES (p_conv, s, p_sender, p_sendername, NULLIF(p_cid, ''), p_body, p_created_at);
    SET mid = LAST_INSERT_ID();

    -- Answered after COMMIT: a failed COMMIT answers an error, never a result.
    COMMIT;
    SELECT s AS seq, mid;
END;
