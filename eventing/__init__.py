"""Events: CloudEvent types (``eventing.types``), the Knative YAML beside this file, and
the local broker + pinger (``eventing.local``) that read that same YAML in the
embedded stack."""
