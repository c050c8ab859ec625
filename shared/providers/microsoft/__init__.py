"""Microsoft 365 / Outlook through Microsoft Graph (PRODUCT.md §2.2): the account behind a token,
its calendars, and subscription clean-up on disconnect (:mod:`.graph`); the Teams meeting adapter and
its drift probe (:mod:`.teams`)."""
