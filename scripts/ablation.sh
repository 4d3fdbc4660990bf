#!/usr/bin/env bash
# The seed's ablation at equal budget on the CPU recipe: with and without the ranking margin, with and
# without hard negatives. All four runs share one feature cache (built by the first run of the recipe),
# so each costs only its training steps. Selection: held-out Spearman rho (eval/spearman in metrics.jsonl).
#   bash scripts/ablation.sh [CACHE_DIR] [STEPS] [key=value overrides of the recipe, as when the cache was built]
# Runs go to $ABLATION_DIR (default runs/ablation).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${1:-runs/cpu-whisper-base-e5small/feature-cache}"
STEPS="${2:-1000}"
shift $(( $# < 2 ? $# : 2 ))
RECIPE=configs/train/cpu-whisper-base-e5small.yaml
OUT="${ABLATION_DIR:-runs/ablation}"
for hn in 1 0; do
  for margin in 1 0; do
    out="$OUT/hn${hn}-margin${margin}"
    python -m voiceclap.train --config "$RECIPE" cache.dir="$CACHE" run.out_dir="$out" \
      loss.hard_negative_weight="$hn" loss.margin_weight="$margin" optim.max_steps="$STEPS" \
      run.eval_every=250 run.save_every=0 run.progress=false "$@"
  done
done
python - "$OUT" <<'PY'
import glob, json, sys
print("| run | best step | R@1 | Spearman rho | rho de | rho en |\n|---|---|---|---|---|---|")
for path in sorted(glob.glob(f"{sys.argv[1]}/*/metrics.jsonl")):
    evals = [r for r in map(json.loads, open(path)) if r.get("split") == "eval" and r["step"] > 0]
    best = min(evals, key=lambda r: r["eval/spearman"])
    print(f"| {path.split('/')[-2]} | {best['step']} | {best['eval/R@1']:.3f} | {best['eval/spearman']:.3f} "
          f"| {best['eval/spearman_de']:.3f} | {best['eval/spearman_en']:.3f} |")
PY
