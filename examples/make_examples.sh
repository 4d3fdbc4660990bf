#!/usr/bin/env bash
# Regenerates the example clips and examples/manifest.tsv.
#
# Each clip is one sentence spoken by espeak-ng, stored as 16 kHz mono FLAC (one as Ogg Vorbis, so
# the examples cover two formats). The manifest pairs every clip with its own transcript ("match"),
# a lightly corrupted one (one word changed: WER about 0.1) and a heavily corrupted one (most words
# changed) -- what a useful score has to rank in that order.
#
# Needs espeak-ng (apt-get install -y espeak-ng) and the voiceclap package (for its decoder).
set -euo pipefail
cd "$(dirname "$0")"

# id | espeak voice | language | file extension | match | light | heavy
SENTENCES=$(cat <<'TABLE'
en-fox|en-us|en|flac|The quick brown fox jumps over the lazy dog.|The quick brown fox jumps over the lazy cat.|A slow red cat sleeps under the lazy table.
en-store|en-gb|en|ogg|Please call Stella and ask her to bring these things from the store.|Please call Stella and ask her to bring those things from the store.|Please tell Bella to send three rings to the shore.
de-train|de|de|flac|Der Zug nach Berlin fährt heute um acht Uhr ab.|Der Zug nach Bremen fährt heute um acht Uhr ab.|Die Katze nach Berlin schläft morgen um neun Uhr.
fr-park|fr-fr|fr|flac|Il fait beau aujourd'hui, allons nous promener au parc.|Il fait beau aujourd'hui, allons nous promener au port.|Il pleut fort ce matin, restons à la maison.
es-farm|es|es|flac|Mañana vamos a visitar a mis abuelos en el campo.|Mañana vamos a visitar a mis tíos en el campo.|Ayer fueron a ver a sus primos en la ciudad.
it-sea|it|it|flac|Oggi il cielo è sereno e il mare è calmo.|Oggi il cielo è grigio e il mare è calmo.|Domani la strada è chiusa e il treno è fermo.
TABLE
)

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

printf 'audio\ttext\tid\tlanguage\tsystem\tkind\n' > manifest.tsv
while IFS='|' read -r id voice language ext match light heavy; do
    espeak-ng -v "$voice" -s 150 -w "$workdir/$id.wav" "$match"
    # Downmix/resample with the library's own front end, then write a small 16 kHz file.
    python - "$workdir/$id.wav" "$id.$ext" <<'PY'
import sys

import soundfile

from voiceclap.audio import SAMPLE_RATE, load_audio

source, target = sys.argv[1:]
soundfile.write(target, load_audio(source), SAMPLE_RATE)
PY
    for kind in match light heavy; do
        case $kind in match) text=$match ;; light) text=$light ;; heavy) text=$heavy ;; esac
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$id.$ext" "$text" "$id-$kind" "$language" espeak-ng "$kind" >> manifest.tsv
    done
done <<< "$SENTENCES"
ls -l ./*.flac ./*.ogg manifest.tsv
