"""What the system tells people: e-mails (:mod:`.emails`, sent through SES) and the iCalendar
files they and the teaching feed carry (:mod:`.ics`).

Rule: a notification never decides anything; capabilities call it with the facts.
"""
