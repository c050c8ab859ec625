"""The schedule capability (PRODUCT.md §2.3 to §2.5): classes and their recurrence (:mod:`.classes`,
:mod:`.recurrence`), bookings (:mod:`.bookings`) and the Stripe webhook that confirms and refunds
them (:mod:`.payments`). It queues meetings jobs; it never calls a provider.
"""
