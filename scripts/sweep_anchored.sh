#!/usr/bin/env bash
# Issue 28, question 1: anchored thoughts on the small ProsQA-style task at the budget where
# coconut learns its thoughts, from one token-CoT model (configs/compare/phrases.yaml), c thoughts
# per step in {1, 2, 3, 4} x the text of every m-th step in {1, 2, null (= coconut; 1:null is the
# in-sweep coconut reference)}.
# One compare run per point under the config's out_dir (anchored_c<c>_m<m>/); points already there
# are skipped and an interrupted one resumes, so rerunning the script continues the sweep.
#   bash scripts/sweep_anchored.sh [c:m ...]      # default: every point, most informative first
#   SWEEP_CONFIG=configs/compare/phrases_medium.yaml bash scripts/sweep_anchored.sh ...   # medium graphs
set -euo pipefail
config=${SWEEP_CONFIG:-configs/compare/phrases.yaml}
out=$(sed -n 's/^out_dir: *//p' "$config")
runs=$(sed -n 's/^run_dir: *//p' "$config")
points=("$@")
[ ${#points[@]} -gt 0 ] || points=(1:1 1:null 2:1 2:null 1:2 2:2 3:1 4:1 3:2 4:2 3:null 4:null)
for point in "${points[@]}"; do
  c=${point%%:*} m=${point##*:}
  name=anchored_c${c}_m${m}
  [ -f "$out/$name/results.json" ] && { echo "[sweep] $name: done"; continue; }
  resume=()
  [ -d "$runs/$name" ] && resume=(--resume)
  latent-cot compare --config "$config" --name "$name" \
    --set model.thoughts_per_step="$c" --set "model.method={every: $m}" --quiet "${resume[@]}"
done
