-- The original's five tables (ORIGINAL.md §(b)), fixed: argon2 hashes instead of
-- plaintext, CHECK constraints instead of ENUM, keys and cascading foreign keys,
-- an ordered OfflineMessage with a BIGINT id and a timestamp, utf8mb4 end to end.
-- Plain CREATE TABLE (no IF NOT EXISTS): a database holding the original's
-- tables must fail loudly rather than keep their old columns. (A run of this
-- migration that a crash cut short is completed from its journal instead:
-- migrations/README.md.)

-- step: User
CREATE TABLE `User` (
    `id` INT NOT NULL AUTO_INCREMENT,
    `name` VARCHAR(50) NOT NULL,
    -- argon2 PHC string, never the password
    `password` VARCHAR(255) NOT NULL,
    `state` VARCHAR(7) NOT NULL DEFAULT 'offline',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uq_User_name` (`name`),
    CONSTRAINT `ck_User_state` CHECK (`state` IN ('online', 'offline'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- step: Friend
CREATE TABLE `Friend` (
    `userid` INT NOT NULL,
    `friendid` INT NOT NULL,
    PRIMARY KEY (`userid`, `friendid`),
    KEY `ix_Friend_friendid` (`friendid`),
    CONSTRAINT `fk_Friend_userid` FOREIGN KEY (`userid`) REFERENCES `User` (`id`) ON DELETE CASCADE,
    CONSTRAINT `fk_Friend_friendid` FOREIGN KEY (`friendid`) REFERENCES `User` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- step: AllGroup
CREATE TABLE `AllGroup` (
    `id` INT NOT NULL AUTO_INCREMENT,
    `groupname` VARCHAR(50) NOT NULL,
    `groupdesc` VARCHAR(200) NOT NULL DEFAULT '',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uq_AllGroup_groupname` (`groupname`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- step: GroupUser
CREATE TABLE `GroupUser` (
    `groupid` INT NOT NULL,
    `userid` INT NOT NULL,
    `grouprole` VARCHAR(7) NOT NULL DEFAULT 'normal',
    PRIMARY KEY (`groupid`, `userid`),
    KEY `ix_GroupUser_userid` (`userid`),
    CONSTRAINT `ck_GroupUser_grouprole` CHECK (`grouprole` IN ('creator', 'normal')),
    CONSTRAINT `fk_GroupUser_groupid` FOREIGN KEY (`groupid`) REFERENCES `AllGroup` (`id`) ON DELETE CASCADE,
    CONSTRAINT `fk_GroupUser_userid` FOREIGN KEY (`userid`) REFERENCES `User` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- step: OfflineMessage
CREATE TABLE `OfflineMessage` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `userid` INT NOT NULL,
    -- one JSON frame; MEDIUMTEXT holds 16 MiB, far above the 64 KiB frame limit
    `message` MEDIUMTEXT NOT NULL,
    -- unix milliseconds
    `created_at` BIGINT NOT NULL,
    PRIMARY KEY (`id`),
    KEY `ix_OfflineMessage_userid_id` (`userid`, `id`),
    CONSTRAINT `fk_OfflineMessage_userid` FOREIGN KEY (`userid`) REFERENCES `User` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
