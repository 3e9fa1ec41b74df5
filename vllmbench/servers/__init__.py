"""The vLLM service's use cases (functions/vllm_deploy): ModelServers in Git, placed, applied, followed.

- ``folder`` (pure): ``models/<namespace>/<server>.yaml`` read and validated; ``head``: the folder at the
  branch head, read once per commit
- ``capacity``: the inventory of the runtime (kube nodes and pods, or the machine's GPUs) with the ledger
- ``placing`` (pure): what a sync plans (new, changed, lost, waiting servers) on the placement planner
- ``sync``: plan -> ledger (compare-and-set) -> render -> the reconcile engine as owner "vllm" -> statuses
- ``lifecycle``: phases (placed, starting, ready, failed, pending), the /v1/models probe, log hints, events
- ``requests``: deploy and delete as commits; ``views``: plan (dry run), inventory, listings
Nothing is imported here, so importing a pure module stays cheap.
"""
