-- The same five tables as migrations/mysql, in SQLite's dialect. AUTOINCREMENT
-- so ids are never reused (OfflineMessage ids are compared by delete_offline).
-- Foreign keys need `PRAGMA foreign_keys=ON`, which chat-model sets per connection.

CREATE TABLE "User" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(50) NOT NULL UNIQUE,
    -- argon2 PHC string, never the password
    password VARCHAR(255) NOT NULL,
    state VARCHAR(7) NOT NULL DEFAULT 'offline' CHECK (state IN ('online', 'offline'))
);

CREATE TABLE "Friend" (
    userid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    friendid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    PRIMARY KEY (userid, friendid)
);
CREATE INDEX "ix_Friend_friendid" ON "Friend" (friendid);

CREATE TABLE "AllGroup" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    groupname VARCHAR(50) NOT NULL UNIQUE,
    groupdesc VARCHAR(200) NOT NULL DEFAULT ''
);

CREATE TABLE "GroupUser" (
    groupid INTEGER NOT NULL REFERENCES "AllGroup" (id) ON DELETE CASCADE,
    userid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    grouprole VARCHAR(7) NOT NULL DEFAULT 'normal' CHECK (grouprole IN ('creator', 'normal')),
    PRIMARY KEY (groupid, userid)
);
CREATE INDEX "ix_GroupUser_userid" ON "GroupUser" (userid);

CREATE TABLE "OfflineMessage" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    userid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    -- one JSON frame
    message TEXT NOT NULL,
    -- unix milliseconds
    created_at BIGINT NOT NULL
);
CREATE INDEX "ix_OfflineMessage_userid_id" ON "OfflineMessage" (userid, id);
