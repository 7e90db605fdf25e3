-- Users in control (issue 21): blocks, the "who may write to me" setting and deleted
-- accounts, friend requests, group admins. New tables only (expand): v0.1.0 and the
-- release before this one never read them, so they keep running during an upgrade.

-- step: Block
CREATE TABLE `Block` (
    -- `userid` blocks `blockedid`
    `userid` INT NOT NULL,
    `blockedid` INT NOT NULL,
    PRIMARY KEY (`userid`, `blockedid`),
    -- who blocked me (presence is hidden from them)
    KEY `ix_Block_blockedid` (`blockedid`),
    CONSTRAINT `fk_Block_userid` FOREIGN KEY (`userid`) REFERENCES `User` (`id`) ON DELETE CASCADE,
    CONSTRAINT `fk_Block_blockedid` FOREIGN KEY (`blockedid`) REFERENCES `User` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- step: UserControl
CREATE TABLE `UserControl` (
    `userid` INT NOT NULL,
    -- who may write to the user: 'anyone' (the default, also when there is no row) or 'friends'
    `writers` VARCHAR(7) NOT NULL DEFAULT 'anyone',
    -- unix milliseconds when the account was deleted; NULL while it lives
    `deleted_at` BIGINT NULL,
    PRIMARY KEY (`userid`),
    CONSTRAINT `ck_UserControl_writers` CHECK (`writers` IN ('anyone', 'friends')),
    CONSTRAINT `fk_UserControl_userid` FOREIGN KEY (`userid`) REFERENCES `User` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- step: FriendRequest
CREATE TABLE `FriendRequest` (
    `fromid` INT NOT NULL,
    `toid` INT NOT NULL,
    -- unix milliseconds
    `created_at` BIGINT NOT NULL,
    PRIMARY KEY (`fromid`, `toid`),
    -- the requests waiting for a user
    KEY `ix_FriendRequest_toid` (`toid`),
    CONSTRAINT `fk_FriendRequest_fromid` FOREIGN KEY (`fromid`) REFERENCES `User` (`id`) ON DELETE CASCADE,
    CONSTRAINT `fk_FriendRequest_toid` FOREIGN KEY (`toid`) REFERENCES `User` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- step: GroupAdmin
CREATE TABLE `GroupAdmin` (
    `groupid` INT NOT NULL,
    `userid` INT NOT NULL,
    PRIMARY KEY (`groupid`, `userid`),
    KEY `ix_GroupAdmin_userid` (`userid`),
    CONSTRAINT `fk_GroupAdmin_groupid` FOREIGN KEY (`groupid`) REFERENCES `AllGroup` (`id`) ON DELETE CASCADE,
    CONSTRAINT `fk_GroupAdmin_userid` FOREIGN KEY (`userid`) REFERENCES `User` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
