"""The meetings capability (PRODUCT.md §2.6): one meeting per online session, minted, moved and
cancelled by the ``mint_meeting`` worker (:mod:`.worker`) over the ledger in
:mod:`shared.store.meetings` and the provider clients in :mod:`shared.providers.meetings`.
"""
