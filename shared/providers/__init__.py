"""Provider adapters: Google (Calendar + Meet), Zoom, Apple (iCloud CalDAV)."""
