"""Desired state in Git: repository access, layout, safe YAML, writes, webhooks, sync.

What lives where (pure modules take values and return values; adapters do I/O):

- pure: ``paths`` (confinement), ``yamldoc`` (safe YAML, file:line errors),
  ``kinds`` (layout and schemas of known kinds), ``changes`` (diff parsing, replay
  planning), ``webhook`` (GitHub signatures and push payloads), ``snapshot`` (what a
  file looks like in the store, what an edit must be);
- git adapter: ``auth`` (token via the git process environment), ``repo`` (bare
  cache, fetch, tree reads), ``commit`` (one commit per change, push with replay),
  ``seed`` (the embedded stack's example repository);
- use cases over git and the store: ``mirror`` (sync), ``editing`` (edit a file),
  ``service`` (projects, reads, fan-out syncs).

Nothing is imported here, so that importing a pure module stays cheap.
"""
