"""The schedule capability (PRODUCT.md §2.3 to §2.5, §2.9): classes and their recurrence
(:mod:`.classes`, :mod:`.recurrence`), bookings and their seat holds (:mod:`.bookings`,
:mod:`.holds`) and the Stripe webhook that confirms and refunds them (:mod:`.payments`). It queues
meetings jobs; it never calls a provider.
"""
