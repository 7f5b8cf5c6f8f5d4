DROP TABLE digest_sent;
