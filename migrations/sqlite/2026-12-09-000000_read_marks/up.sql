-- Read receipts (issue 20): how far each user has read each conversation (see the MySQL migration).
CREATE TABLE "ReadMark" (
    userid INTEGER NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    conv BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (userid, conv)
);
