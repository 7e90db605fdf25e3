DROP TABLE `ResumeToken`;
DROP TABLE `ConvCursor`;
DROP TABLE `Message`;
DROP TABLE `Conversation`;
