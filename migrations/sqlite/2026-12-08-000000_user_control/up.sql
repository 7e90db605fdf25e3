-- The same tables as migrations/mysql (issue 21: blocks, the "who may write to me"
-- setting and deleted accounts, friend requests, group admins), in SQLite's dialect.

CREATE TABLE "Block" (
    userid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    blockedid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    PRIMARY KEY (userid, blockedid)
);
CREATE INDEX "ix_Block_blockedid" ON "Block" (blockedid);

CREATE TABLE "UserControl" (
    userid INTEGER NOT NULL PRIMARY KEY REFERENCES "User" (id) ON DELETE CASCADE,
    writers VARCHAR(7) NOT NULL DEFAULT 'anyone' CHECK (writers IN ('anyone', 'friends')),
    deleted_at BIGINT NULL
);

CREATE TABLE "FriendRequest" (
    fromid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    toid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (fromid, toid)
);
CREATE INDEX "ix_FriendRequest_toid" ON "FriendRequest" (toid);

CREATE TABLE "GroupAdmin" (
    groupid INTEGER NOT NULL REFERENCES "AllGroup" (id) ON DELETE CASCADE,
    userid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    PRIMARY KEY (groupid, userid)
);
CREATE INDEX "ix_GroupAdmin_userid" ON "GroupAdmin" (userid);
