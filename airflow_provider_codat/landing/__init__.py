"""The landing: the files an extract writes and every reader (the tables, the reconcile, a user's own) reads.

Its format is described in ``docs/landing.md``; nothing here imports the extract or the tables.
"""
