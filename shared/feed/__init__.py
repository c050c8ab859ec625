"""The teaching-schedule feed (PRODUCT.md §2.8): sealed, rotating feed tokens and the ``.ics`` served
to calendar apps (:mod:`.service`).
"""
