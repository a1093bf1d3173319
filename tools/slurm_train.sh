#!/usr/bin/env bash
# Training on a Slurm cluster, one task per GPU (mmdet's tools/slurm_train.sh; mmengine's "slurm" launcher reads
# SLURM_PROCID / SLURM_NTASKS / SLURM_NODELIST).
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#       bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# e.g. GPUS=8 bash tools/slurm_train.sh gpu zf_pow1 configs/faster_rcnn_zf_pow1_voc_8xb1.py work_dirs/zf_pow1_8xb1
# The detection configs state their total batch (*_8xb1.py: 8 GPUs x 1 image); pick the one of GPUS (docs/cluster.md).
set -x

if [ $# -lt 4 ]; then
    echo "usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
cd "$(dirname "$0")/.." || exit 1
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}

# shellcheck disable=SC2086  # SRUN_ARGS holds several arguments
PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u tools/train.py "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"
