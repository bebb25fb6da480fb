"""The portfolio path: Codat syncs on its own schedule, webhooks say what changed, and windows of many companies
are read and merged together (``docs/webhooks.md#the-portfolio-path``)."""
