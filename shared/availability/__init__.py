"""A mentor's availability (PRODUCT.md §2.10): weekly hours, overrides and booking rules
(:mod:`~shared.availability.rules`, :mod:`~shared.availability.service`), and the pure slot engine
that turns them and everything that blocks time into bookable starts (:mod:`~shared.availability.slots`)."""
