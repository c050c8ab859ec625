// Reads iCalendar data on stdin the way ical.js (Thunderbird, Nextcloud Calendar, many web
// calendars) does and prints, as JSON, every VEVENT's UID with its start and end as UTC epoch ms.
// stdin may hold several VCALENDARs one after another (e.g. many e-mail attachments); each is read
// on its own, with only its own VTIMEZONEs registered (ical.js knows no zone by name but UTC), so
// the times are read through the VTIMEZONEs we write. Used by tests/unit/test_ics_interop.py.
import ICAL from "ical.js";

let text = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) text += chunk;

const parsed = ICAL.parse(text);
const calendars = (Array.isArray(parsed[0]) ? parsed : [parsed]).map((jcal) => new ICAL.Component(jcal));
const events = [];
for (const calendar of calendars) {
  ICAL.TimezoneService.reset();
  for (const vtimezone of calendar.getAllSubcomponents("vtimezone")) {
    ICAL.TimezoneService.register(vtimezone);
  }
  for (const vevent of calendar.getAllSubcomponents("vevent")) {
    const event = new ICAL.Event(vevent);
    events.push({
      uid: event.uid,
      start: event.startDate.toUnixTime() * 1000,
      end: event.endDate.toUnixTime() * 1000,
    });
  }
}
process.stdout.write(JSON.stringify(events));
