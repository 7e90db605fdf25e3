DROP TABLE IF EXISTS `SessionCursor`;
