"""The busy-time capability (PRODUCT.md §2.7): the scheduled fan-out (:mod:`.poll`), the per-connection
sync (:mod:`.sync`, Google freeBusy and Apple CalDAV with :mod:`.expand`), Google push channels
(:mod:`.push`, with :mod:`.push_webhook`, :mod:`.push_renewal`, :mod:`.push_settings`) and
the busy view the API serves (:mod:`.view`). Its data lives in :mod:`shared.store.busy` and
:mod:`shared.store.channels`.
"""
