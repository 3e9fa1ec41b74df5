"""The embedded stack (`make run`): everything on one machine, nothing installed by hand."""
