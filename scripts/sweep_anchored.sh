#!/usr/bin/env bash
# Issue 28, question 1: anchored thoughts on the small ProsQA-style task at the budget where
# coconut learns its thoughts (configs/compare/prosqa_small.yaml: 16,000 graphs x 12 epochs),
# c thoughts per step in {1, 2, 3, 4} x the text of every m-th step in {1, 2, null (= coconut)}.
# One compare run per point under results/seed_questions/phrases/anchored_c<c>_m<m>/; points already
# there are skipped and an interrupted one resumes, so rerunning the script continues the sweep.
#   bash scripts/sweep_anchored.sh [c:m ...]      # default: every point, most informative first
set -euo pipefail
out=results/seed_questions/phrases
points=("$@")
[ ${#points[@]} -gt 0 ] || points=(1:1 2:1 1:2 2:2 2:null 3:1 4:1 3:2 4:2 3:null 4:null 1:null)
for point in "${points[@]}"; do
  c=${point%%:*} m=${point##*:}
  name=anchored_c${c}_m${m}
  [ -f "$out/$name/results.json" ] && { echo "[sweep] $name: done"; continue; }
  resume=()
  [ -d "runs/compare/$name" ] && resume=(--resume)
  latent-cot compare --config configs/compare/prosqa_small.yaml --modes anchored --name "$name" --out_dir "$out" \
    --set model.thoughts_per_step="$c" --set "model.method={every: $m}" --quiet "${resume[@]}"
done
