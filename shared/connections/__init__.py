"""The connections capability (PRODUCT.md §2.2): the OAuth authorize/callback flow, Apple connect,
calendars, disconnect (:mod:`.service`) and Zoom's deauthorization webhook (:mod:`.zoom_webhook`).
The token lifecycle every capability uses is :mod:`shared.providers.credentials`.
"""
