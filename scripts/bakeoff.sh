#!/usr/bin/env bash
# The listening bake-off at equal CPU budget: every row is configs/train/cpu-listening.yaml with
# overrides, trained for the same number of steps on the same feature cache (built by the first row
# that needs it), then scored on the DEV splits by the listening metrics (voiceclap eval): the fluent
# minimal pairs, recorded speech held out by speaker, the synthetic held-out clips (R@1, the card's
# rho and its text-prior control). The row to ship is chosen on these; the test splits are scored once,
# afterwards (MODEL_CARD.md).
#   bash scripts/bakeoff.sh [STEPS] [ROW ...]       rows: mean-e5 attention-e5 attention-tokens
#                                                         no-spoken no-recorded distilled shipped-tuned
#                                                         shipped-tuned-distilled shipped-tuned-gentle
#                                                         shipped-tuned-no-spoken shipped-tuned-no-recorded
#                                                         shipped-tuned-gentler
# The shipped model (the first row of the table) is scored by the same voiceclap eval command with --model omitted.
# Runs go to $BAKEOFF_DIR (default runs/bakeoff), reports to $BAKEOFF_DIR/<row>/dev.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-1800}"
shift $(( $# < 1 ? $# : 1 ))
ROWS=("${@:-mean-e5 attention-e5 attention-tokens no-spoken no-recorded distilled}")
read -r -a ROWS <<< "${ROWS[*]}"
OUT="${BAKEOFF_DIR:-runs/bakeoff}"
RECORDED=[uqm,tuxpaint,fillets,festvox-ru]
# The shipped-* rows start from these heads: $SHIPPED_INIT, default the shipped model. (Version 2 of
# the shipped model was made from version 1's: MODEL_CARD.md says how to get those back.)
SHIPPED="model.init_from=${SHIPPED_INIT:-src/voiceclap/pretrained/voiceclap-base-e5s} model.config=whisper-base-e5small \
model.text_trainable_from_layer=6"

overrides() {
  case "$1" in
    mean-e5)          echo "model.config=whisper-base-e5small model.text_trainable_from_layer=6 optim.lr=1e-3" ;;
    attention-e5)     echo "model.config=whisper-base-e5small-attention model.text_trainable_from_layer=6" ;;
    attention-tokens) echo "" ;;
    no-spoken)        echo "data.spoken_negatives=false" ;;
    no-recorded)      echo "data.exclude_sources=$RECORDED" ;;
    distilled)        echo "loss.distill_weight=1.0" ;;
    # The shipped model's heads trained on: the mixed corpus, from where they are.
    shipped-tuned)    echo "$SHIPPED optim.lr=3e-4" ;;
    shipped-tuned-distilled) echo "$SHIPPED optim.lr=3e-4 loss.distill_weight=1.0" ;;
    shipped-tuned-gentle)    echo "$SHIPPED optim.lr=1e-4" ;;
    shipped-tuned-gentler)   echo "$SHIPPED optim.lr=5e-5" ;;
    # The two ablations of the issue, taken on the best row (gentle): no spoken negatives, no recorded speech.
    shipped-tuned-no-spoken) echo "$SHIPPED optim.lr=1e-4 data.spoken_negatives=false" ;;
    shipped-tuned-no-recorded) echo "$SHIPPED optim.lr=1e-4 data.exclude_sources=$RECORDED" ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}

for row in "${ROWS[@]}"; do
  # shellcheck disable=SC2046
  python -m voiceclap.train --config configs/train/cpu-listening.yaml run.out_dir="$OUT/$row" \
    optim.max_steps="$STEPS" run.progress=false $(overrides "$row")
  voiceclap eval --model "$OUT/$row/model" --no-progress --out "$OUT/$row/dev" \
    --heldout data/corpus/synthetic/heldout --max-clips 1000 \
    --heldout real=data/corpus/recorded/dev --pairs data/corpus/pairs/dev
done
