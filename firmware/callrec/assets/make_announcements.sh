#!/bin/sh
# Regenerates the shipped announcements with espeak-ng (Debian: apt-get install espeak-ng sox).
# Japanese is written in kana: espeak-ng reads kanji out as "Chinese letter".
# Output: 16 kHz 16-bit mono WAV; the firmware converts to the line rate at load.
set -eu
cd "$(dirname "$0")"
speak() {  # voice, text, output
    espeak-ng -v "$1" -s 150 -w "$3.raw.wav" "$2"
    sox "$3.raw.wav" -r 16000 -b 16 -c 1 "$3" norm -3 pad 0.2 0.3
    rm -f "$3.raw.wav"
}
speak ja "このつうわは、さーびすこうじょうのため、ろくおんさせていただいております。" announcement_ja.wav
speak en-us "This call is being recorded for quality and training purposes." announcement_en.wav
