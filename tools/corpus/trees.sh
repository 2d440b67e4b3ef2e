#!/usr/bin/env bash
# Regenerate fixtures/trees/: tiny audio trees shaped like the corpora users download, for the
# end-to-end test from audio and the corpora's own label files to a report
# (crates/cli/tests/trees.rs):
#   iemocap/     Session<n>/sentences/wav/<dialog>/<utt>.wav, Session<n>/dialog/EmoEvaluation/<dialog>.txt
#   msp-improv/  session<n>/<dialog>/<type>/MSP-IMPROV-<...>.wav, Evaluation.txt
#   tedlium/     sph/<talk>.sph (NIST SPHERE), stm/<talk>.stm
# Speech from espeak-ng (the emotions differ in pitch, speed and loudness, as in the embedded
# corpus of docs/corpus.md), 8 kHz 16-bit mono, 0.4 s per utterance (about 450 KB in all). Needs the Debian
# packages espeak-ng and sox. Output is the same for the same packages.
#
#   tools/corpus/trees.sh [--out DIR]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/../../fixtures/trees"
if [ "${1:-}" = "--out" ]; then out="$2"; fi
for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "trees.sh: needs $tool (apt-get install espeak-ng sox)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

sentences=(
    "the train leaves at nine" "open the window please" "we talked about it yesterday"
    "this is not what I asked for" "she found the keys at last" "I will call you tonight"
    "they moved to a new house" "bring the papers tomorrow"
)
# emotion -> espeak pitch, speed (words per minute), amplitude
declare -A pitch=([ang]=70 [hap]=85 [neu]=45 [sad]=25)
declare -A speed=([ang]=210 [hap]=190 [neu]=160 [sad]=120)
declare -A amplitude=([ang]=180 [hap]=140 [neu]=100 [sad]=70)

# say TEXT EMOTION VOICE OUT [SECONDS]: 8 kHz mono 16-bit WAV, trimmed or padded to SECONDS.
say() {
    local text="$1" emotion="$2" voice="$3" target="$4" seconds="${5:-0.4}"
    espeak-ng -v "$voice" -p "${pitch[$emotion]}" -s "${speed[$emotion]}" \
        -a "${amplitude[$emotion]}" -w "$work/raw.wav" "$text"
    sox "$work/raw.wav" -r 8000 -c 1 -b 16 "$target" trim 0 "$seconds" pad 0 "$seconds" trim 0 "$seconds"
}

emotions=(ang hap neu sad)
n=0
next_sentence() { n=$(( (n + 1) % ${#sentences[@]} )); echo "${sentences[$n]}"; }

# IEMOCAP: 3 sessions, one dialog each, both speakers, every emotion once; a frustrated turn
# and an excited one that the label map handles (fru dropped, exc -> happy).
for s in 1 2 3; do
    dialog="Ses0${s}F_impro0${s}"
    wavdir="$out/iemocap/Session$s/sentences/wav/$dialog"
    labels="$out/iemocap/Session$s/dialog/EmoEvaluation"
    mkdir -p "$wavdir" "$labels"
    {
        echo "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"
        echo
    } >"$labels/$dialog.txt"
    turn=0
    for speaker in F M; do
        voice=$([ "$speaker" = F ] && echo en+f3 || echo en+m3)
        for emotion in "${emotions[@]}" exc fru; do
            id=$(printf "%s_%s%03d" "$dialog" "$speaker" "$turn")
            sound=$emotion
            [ "$emotion" = exc ] && sound=hap
            [ "$emotion" = fru ] && sound=ang
            say "$(next_sentence)" "$sound" "$voice" "$wavdir/$id.wav"
            start=$(printf "%d.%04d" $((turn * 2)) $((turn * 37 % 10000)))
            end=$(printf "%d.%04d" $((turn * 2 + 1)) $((turn * 53 % 10000)))
            printf "[%s - %s]\t%s\t%s\t[2.5000, 3.0000, 2.5000]\n" "$start" "$end" "$id" "$emotion" >>"$labels/$dialog.txt"
            printf "C-E2:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n" >>"$labels/$dialog.txt"
            turn=$((turn + 1))
        done
    done
done

# MSP-IMPROV: 2 sessions, each emotion twice per session; "X" (no agreement) is dropped.
declare -A code=([ang]=A [hap]=H [neu]=N [sad]=S)
evaluation="$out/msp-improv/Evaluation.txt"
mkdir -p "$out/msp-improv"
: >"$evaluation"
for s in 1 2; do
    take=1
    for emotion in "${emotions[@]}" "${emotions[@]}" neu; do
        speaker=$([ $((take % 2)) = 0 ] && echo "M0$s" || echo "F0$s")
        voice=$([ $((take % 2)) = 0 ] && echo en-us+m2 || echo en-us+f2)
        name=$(printf "S0%dA-%s-S-FM%02d" "$s" "$speaker" "$take")
        dir="$out/msp-improv/session$s/S0${s}A/S"
        mkdir -p "$dir"
        say "$(next_sentence)" "$emotion" "$voice" "$dir/MSP-IMPROV-$name.wav"
        category=${code[$emotion]}
        [ "$take" = 9 ] && category=X
        printf "UTD-IMPROV-%s.avi; %s; A:3.000000; V:2.500000; D:3.000000 ; N:4.000000;\n" "$name" "$category" >>"$evaluation"
        printf "F01-FM-Rater1; Angry; ; A:3.000000; V:2.000000; D:3.000000; N:4.000000;\n\n" >>"$evaluation"
        take=$((take + 1))
    done
done

# TED-LIUM: one talk, 16 segments of 0.4 s and one ignored segment.
mkdir -p "$out/tedlium/sph" "$out/tedlium/stm"
parts=()
stm="$out/tedlium/stm/TalkOne_2019.stm"
: >"$stm"
for i in $(seq 0 15); do
    emotion=${emotions[$((i % 4))]}
    say "$(next_sentence)" "$emotion" en+m1 "$work/seg$i.wav"
    parts+=("$work/seg$i.wav")
    start=$(printf "%d.%02d" $((i * 40 / 100)) $((i * 40 % 100)))
    end=$(printf "%d.%02d" $(((i + 1) * 40 / 100)) $(((i + 1) * 40 % 100)))
    printf "TalkOne_2019 1 TalkOne_2019 %s %s <o,f0,male> segment %d\n" "$start" "$end" "$i" >>"$stm"
done
printf "TalkOne_2019 1 inter_segment_gap 6.40 6.80 <o,,unknown> ignore_time_segment_in_scoring\n" >>"$stm"
sox -n -r 8000 -c 1 -b 16 "$work/gap.wav" trim 0 0.4
sox "${parts[@]}" "$work/gap.wav" -t sph "$out/tedlium/sph/TalkOne_2019.sph"

du -sh "$out"
find "$out" -type f | wc -l
