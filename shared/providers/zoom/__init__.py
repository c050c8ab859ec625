"""Zoom: the REST client for the connected user (:mod:`.client`), the scheduled-meetings adapter
(:mod:`.meetings`) and the one reading of Zoom's error answers (:mod:`.errors`).
"""
