"""The messages capabilities hand each other through SQS: meetings jobs (:mod:`.meetings`, produced by
the schedule capability and the Stripe webhook, consumed by ``mint_meeting``) and busy-sync jobs
(:mod:`.busy`, produced by the poll fan-out, Google push and connect, consumed by ``busy_sync``).

They sit below the capabilities so a producer never imports its consumer.
"""
