-- The append as one stored procedure (ARCHITECTURE.md, "The cost of an append"): a
-- batch of chats is one CALL, one round trip, one statement the node prepares once
-- per connection. Safe to run again: the procedure is dropped before it is created.
-- Versioned by name: a later release adds chat_append_v2 beside it, so that nodes of
-- this release keep calling v1 during a rolling upgrade (expand, then contract).
--
-- convs: JSON [[conv, n], ...], each conversation of the batch once, ascending (the
--        lock order, so two nodes' appends never deadlock), n = its new messages;
-- msgs:  JSON [[conv, back, sender, sendername, cid, body, created_at], ...], the new
--        messages in order; back = how many later messages of the same conversation
--        the batch holds, so seq = the conversation's new lastseq - back; cid "" = none;
-- ids_back: also answer every new message's id (when InnoDB does not hand a
--        multi-row INSERT consecutive ids, innodb_autoinc_lock_mode = 2).
-- Answers one row: lasts = JSON [[conv, lastseq], ...] after the append, first_id =
-- the first new id, mids = JSON [[id, conv, seq], ...] or NULL. A (sender, cid) stored
-- before fails the whole CALL with a duplicate-key error and changes nothing: the
-- node then looks the earlier copies up and calls again without them.

-- step: chat_append_v1
DROP PROCEDURE IF EXISTS chat_append_v1;

CREATE PROCEDURE chat_append_v1(
    IN convs LONGTEXT CHARACTER SET utf8mb4,
    IN msgs LONGTEXT CHARACTER SET utf8mb4,
    IN ids_back BOOLEAN
)
MODIFIES SQL DATA
BEGIN
    DECLARE lasts LONGTEXT CHARACTER SET utf8mb4 DEFAULT NULL;
    DECLARE mids LONGTEXT CHARACTER SET utf8mb4 DEFAULT NULL;
    DECLARE first_id BIGINT DEFAULT NULL;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        RESIGNAL;
    END;

    START TRANSACTION;

    -- Each conversation's counter moves on by its new messages; its row lock orders
    -- this append after any other to the same conversation. A conversation's first
    -- message creates its row (the node checked that its users or group exist).
    INSERT INTO `Conversation` (`id`, `userlo`, `userhi`, `groupid`, `lastseq`)
        SELECT j.conv,
               IF(j.conv > 0, j.conv >> 32, NULL),
               IF(j.conv > 0, j.conv & 4294967295, NULL),
               IF(j.conv < 0, -j.conv, NULL),
               j.n
        FROM JSON_TABLE(convs, '$[*]' COLUMNS (
            conv BIGINT PATH '$[0]',
            n BIGINT PATH '$[1]'
        )) AS j
    ON DUPLICATE KEY UPDATE `lastseq` = `lastseq` + VALUES(`lastseq`);

    INSERT INTO `Message` (`conv`, `seq`, `sender`, `sendername`, `cid`, `body`, `created_at`)
        SELECT m.conv, c.lastseq - m.back, m.sender, m.sendername, NULLIF(m.cid, ''), m.body, m.created_at
        FROM JSON_TABLE(msgs, '$[*]' COLUMNS (
            i FOR ORDINALITY,
            conv BIGINT PATH '$[0]',
            back BIGINT PATH '$[1]',
            sender INT PATH '$[2]',
            sendername VARCHAR(50) PATH '$[3]',
            cid VARCHAR(64) PATH '$[4]',
            body LONGTEXT PATH '$[5]',
            created_at BIGINT PATH '$[6]'
        )) AS m
        JOIN `Conversation` AS c ON c.id = m.conv
        ORDER BY m.i;
    SET first_id = LAST_INSERT_ID();

    -- Read before COMMIT (our own rows, still locked), answered after it: a failed
    -- COMMIT answers an error, never a result.
    SELECT CAST(JSON_ARRAYAGG(JSON_ARRAY(c.id, c.lastseq)) AS CHAR CHARACTER SET utf8mb4) INTO lasts
        FROM JSON_TABLE(convs, '$[*]' COLUMNS (conv BIGINT PATH '$[0]')) AS j
        JOIN `Conversation` AS c ON c.id = j.conv;
    IF ids_back THEN
        SELECT CAST(JSON_ARRAYAGG(JSON_ARRAY(x.id, x.conv, x.seq)) AS CHAR CHARACTER SET utf8mb4) INTO mids
            FROM JSON_TABLE(convs, '$[*]' COLUMNS (conv BIGINT PATH '$[0]', n BIGINT PATH '$[1]')) AS j
            JOIN `Conversation` AS c ON c.id = j.conv
            JOIN `Message` AS x ON x.conv = j.conv AND x.seq > c.lastseq - j.n;
    END IF;

    COMMIT;
    SELECT lasts, first_id, mids;
END;
