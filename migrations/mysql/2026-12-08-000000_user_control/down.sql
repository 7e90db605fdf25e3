DROP TABLE `GroupAdmin`;
DROP TABLE `FriendRequest`;
DROP TABLE `UserControl`;
DROP TABLE `Block`;
