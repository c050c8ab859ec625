"""Google: the Calendar API client (:mod:`.calendar`: calendar list, freeBusy), push channels
(:mod:`.channels`: ``events.watch`` / ``channels.stop``), Calendar events with a Meet link
(:mod:`.meet`) and the one reading of Google's error answers (:mod:`.errors`).
"""
