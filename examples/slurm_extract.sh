#!/usr/bin/env bash
# Extract a large image collection as a SLURM job array of shards, then merge the shards into one study.
#
# On a cluster (one array task per shard; SHARDS must equal the array's size):
#   IMAGES=/data/cxr METADATA=/data/cxr/labels.csv BACKBONE=biomedclip OUT=/scratch/study SHARDS=8 \
#     sbatch --array=1-8 examples/slurm_extract.sh
#   # when every task has finished (or: sbatch --dependency=afterok:<job id> ... --wrap "..."):
#   medinterp merge /scratch/study /scratch/study.shards/shard-*
#
# Locally, without SLURM (the shards run as plain processes, then the merge; tests/test_examples.py runs this):
#   IMAGES=... BACKBONE=... OUT=... SHARDS=2 examples/slurm_extract.sh --local
#
# Every shard must see the same images: keep IMAGES, METADATA, N and SEED the same for all of them. EXTRA holds
# further `medinterp extract` options, the same for every shard (e.g. "--precision bfloat16 --batch-size 64").
# A task that dies can be resubmitted as is: `extract` resumes its shard's store.
#SBATCH --job-name=medinterp-extract
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=12:00:00
#SBATCH --output=medinterp-extract-%A_%a.log
set -euo pipefail

: "${IMAGES:?set IMAGES to the image folder}" "${BACKBONE:?set BACKBONE}" "${OUT:?set OUT to the merged study folder}"
SHARDS=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:-}}
: "${SHARDS:?set SHARDS to the number of shards}"
MEDINTERP=${MEDINTERP:-medinterp}
N=${N:-all}
SEED=${SEED:-0}
META=()
if [[ -n "${METADATA:-}" ]]; then META=(--metadata "$METADATA"); fi

shard() {  # extract shard $1 of $SHARDS into $OUT.shards/shard-$1
    # shellcheck disable=SC2086  # EXTRA is a list of options
    "$MEDINTERP" --quiet extract --backbone "$BACKBONE" --images "$IMAGES" "${META[@]}" --n "$N" --seed "$SEED" \
        --shard "$1/$SHARDS" --out "$OUT.shards/shard-$1" ${EXTRA:-}
}

if [[ "${1:-}" == "--local" ]]; then
    pids=()
    for i in $(seq 1 "$SHARDS"); do shard "$i" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done            # set -e: a failed shard stops the script here
    dirs=()
    for i in $(seq 1 "$SHARDS"); do dirs+=("$OUT.shards/shard-$i"); done
    "$MEDINTERP" --quiet merge "$OUT" "${dirs[@]}"
else
    : "${SLURM_ARRAY_TASK_ID:?run under sbatch --array=1-$SHARDS, or pass --local}"
    shard "$SLURM_ARRAY_TASK_ID"
fi
