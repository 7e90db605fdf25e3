DROP PROCEDURE IF EXISTS chat_append_one_v1;
