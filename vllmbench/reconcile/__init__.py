"""The reconcile engine: desired objects -> live objects of one owner (DESIGN.md "Reconcile").

Pure modules: ``objects`` (ownership marks, hashes, order), ``drift`` (does live still
hold what we applied), ``plan`` (create / update / drift / unchanged / recreate /
prune / conflict / hold), ``health`` (states and reasons in words), ``policy`` (what
the deployer may apply). The runs themselves: ``engine`` (steps over a workload
runtime and the store). Nothing is imported here, so importing a pure module is cheap.
"""
