"""Foundations every capability stands on: settings (:mod:`.config`), the HTTP API's error and
response plumbing (:mod:`.api`), JWT verification (:mod:`.auth`), AWS clients (:mod:`.aws`), HTTP
retries (:mod:`.http`), logging/tracing/metrics (:mod:`.observability`), secrets (:mod:`.secrets`)
and the typed SQS queue with its record runner (:mod:`.queue`).

Rule: nothing here imports another ``shared`` package (import-linter's layers contract).
"""
