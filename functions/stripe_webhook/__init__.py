"""stripe_webhook: Stripe's signed events (``POST /webhooks/stripe``)."""
