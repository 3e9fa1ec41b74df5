"""Labels and annotations that tie a rendered workload to its ModelServer.

The renderer writes them and the inventory reads them back from the pods, so that a
running server's GPUs are known to belong to it (and to its priority) after a restart.
"""

SERVER = "vllmbench.dev/server"
SERVER_NAMESPACE = "vllmbench.dev/server-namespace"
PRIORITY = "vllmbench.dev/priority"
CLAIM_BYTES = "vllmbench.dev/gpu-claim-bytes"  # bytes per GPU when sharing, absent for whole GPUs
IDENTITY = "vllmbench.dev/identity"  # a hash of ModelServerSpec.identity()
GPU_INDICES = "vllmbench.dev/gpu-indices"  # "0,1": the local runtime's CUDA_VISIBLE_DEVICES for a single replica
PLACED_AT = "vllmbench.dev/placed-at"  # unix seconds, for picking the most recent victims first
GPU_PRODUCT = "nvidia.com/gpu.product"
GPU_MEMORY = "nvidia.com/gpu.memory"  # MiB
GPU_COUNT = "nvidia.com/gpu.count"
GPU_REPLICAS = "nvidia.com/gpu.replicas"  # time-slicing replicas per GPU
MIG_STRATEGY = "nvidia.com/mig.strategy"
HOSTNAME = "kubernetes.io/hostname"
