"""Portfolio health: what the company tasks, merges, budget and webhook receiver record as they go, and the page
inside the Airflow UI that shows it (docs/health.md)."""
