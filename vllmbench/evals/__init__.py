"""Evaluations: runs from templates in Git, schedules, the run lifecycle, verdicts.

Pure: ``templates`` (sandboxed Jinja2 job templates), ``machine`` (the lifecycle,
moved only by events), ``verdict`` (repeats, baselines, noise), ``schedules`` (cron
schedules in Git, rendered to PingSources). Nothing is imported here.
"""
