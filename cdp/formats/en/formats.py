"""How the Console writes dates and times in English: ISO order, to the minute, with the
zone (the Console shows UTC; a reader in another zone must not take it for theirs)."""

DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
SHORT_DATE_FORMAT = "Y-m-d"
