"""provider_webhooks: signed webhooks from providers (``POST /webhooks/zoom``)."""
