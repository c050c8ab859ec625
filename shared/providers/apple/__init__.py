"""Apple iCloud: the CalDAV client (:mod:`.caldav`: discovery, calendars, busy reads)."""
