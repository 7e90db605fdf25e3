DROP INDEX IF EXISTS "ix_ResumeToken_userid";
DROP TABLE IF EXISTS "SessionCursor";
