"""The append-only, hash-chained audit log of every run, model change, flag, view and decision."""
