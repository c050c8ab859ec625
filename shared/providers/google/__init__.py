"""Google: the Calendar API client (:mod:`.calendar`: calendar list, freeBusy) and push channels
(:mod:`.channels`: ``events.watch`` / ``channels.stop``). Meet events are in
:mod:`shared.providers.meetings`.
"""
