"""The connections capability (PRODUCT.md §2.2): the OAuth authorize → callback → complete flow
(:mod:`.oauth_flow`), Apple connect (:mod:`.apple`) and its attempt limits (:mod:`.attempts`),
calendars and disconnect (:mod:`.calendars`; Microsoft's: :mod:`.microsoft`), the API's views
(:mod:`.views`) and Zoom's deauthorization webhook (:mod:`.zoom_webhook`). The token lifecycle every
capability uses is :mod:`shared.providers.credentials`.
"""
