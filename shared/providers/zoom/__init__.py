"""Zoom: the REST client for the connected user (:mod:`.client`). Meetings are in
:mod:`shared.providers.meetings`.
"""
