#!/usr/bin/env bash
# Pin a queue's worker pool to a number of pods, or hand it back to KEDA.
#   ops/scale.sh <queue> <replicas>   e.g. ops/scale.sh training 0   (stop taking training runs)
#   ops/scale.sh <queue> auto         KEDA scales the pool on its backlog again
# Namespace: $LOOPLINE_NAMESPACE (default loopline); kubectl uses the current context.
set -euo pipefail

# The queues of services/queues.py, in its order; tests/unit/test_deploy_files.py keeps them equal.
QUEUES=(inference augmentation training deployment)

NAMESPACE="${LOOPLINE_NAMESPACE:-loopline}"

usage() {
    echo "usage: $0 <queue> <replicas|auto>   (queues: ${QUEUES[*]})" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
queue=$1
replicas=$2

known=false
for q in "${QUEUES[@]}"; do
    [[ $q == "$queue" ]] && known=true
done
if ! $known; then
    echo "unknown queue '$queue'; one of: ${QUEUES[*]}" >&2
    exit 2
fi
[[ $replicas == auto || $replicas =~ ^[0-9]+$ ]] || usage

name="loopline-worker-$queue"
k() { kubectl --namespace "$NAMESPACE" "$@"; }

# A bare `kubectl scale` on a KEDA-managed Deployment is undone at the next polling interval;
# KEDA's paused-replicas annotation holds the count until it is removed.
has_scaledobject=false
if k get scaledobject "$name" >/dev/null 2>&1; then
    has_scaledobject=true
fi

if [[ $replicas == auto ]]; then
    $has_scaledobject || { echo "$name has no ScaledObject to hand it back to" >&2; exit 1; }
    k annotate scaledobject "$name" autoscaling.keda.sh/paused-replicas-
    exit 0
fi

if $has_scaledobject; then
    k annotate --overwrite scaledobject "$name" "autoscaling.keda.sh/paused-replicas=$replicas"
fi
k scale deployment "$name" --replicas="$replicas"
