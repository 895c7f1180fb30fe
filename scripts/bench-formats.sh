#!/usr/bin/env bash
# Output formats (the thirteenth section of `make bench`; it also runs alone): a 60-minute
# source with AAC-LC audio made into each format by the transcoder Audiomill runs (the
# `transcode` example: the same code as the worker's child, without the service around it),
# side by side with the ffmpeg CLI asked for the same; and the same source to M4A by stream
# copy against re-encoding it, both in Audiomill and in the CLI (`-c:a copy` against
# `-c:a aac`). One run each: a 60-minute transcode is long enough not to need a best of.
# Prints table rows for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_begin
EXAMPLE=$TARGET/examples/transcode

now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.2f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
# The seconds the transcoder reports for SOURCE to OUTPUT with FIELDS.
ours() { "$EXAMPLE" "$@" | awk '{print $1}'; }
# The seconds the CLI takes for the same, its arguments after `-i SOURCE`.
cli() { # SOURCE ARGS... OUTPUT
  local start source=$1
  shift
  start=$(now)
  ff -i "$source" -vn "$@"
  since "$start"
}

echo "Preparing a 60-minute source (AAC-LC 128 kbit/s, stereo 48 kHz, music-like)..." >&2
ff -f lavfi -i "sine=frequency=440:sample_rate=48000" -f lavfi -i "anoisesrc=color=pink:amplitude=0.2:sample_rate=48000" \
  -filter_complex amix=inputs=2 -t 3600 -ac 2 -c:a aac -b:a 128k "$WORK/hour.m4a"

echo "13/13 formats, 60-minute source..." >&2
rows=()
for format in mp3 m4a opus flac wav; do
  case $format in
    mp3) cli_args=(-c:a libmp3lame -q:a 2) ;;
    m4a) cli_args=(-c:a aac) ;;
    opus) cli_args=(-c:a libopus) ;;
    flac) cli_args=(-c:a flac) ;;
    # Mono: an hour of stereo WAV is past the 600 MB an output may have by default.
    wav) cli_args=(-c:a pcm_s16le -ac 1) ;;
  esac
  # M4A from AAC would be copied; re-encoding is what the CLI's `-c:a aac` does.
  extra=()
  [ "$format" = m4a ] && extra=(reencode=true)
  [ "$format" = wav ] && extra=(channels=1)
  mine=$(ours "$WORK/hour.m4a" "$WORK/ours.$format" "format=$format" "${extra[@]}")
  theirs=$(cli "$WORK/hour.m4a" "${cli_args[@]}" "$WORK/cli.$format")
  size=$(stat -c %s "$WORK/ours.$format")
  label=${format^^}
  [ "$format" = opus ] && label=Opus
  rows+=("| 60-minute source to ${label}: Audiomill / ffmpeg CLI (${cli_args[*]}) | within 5% | ${mine} s / ${theirs} s ($(ratio "$mine" "$theirs")), $((size / 1024 / 1024)) MB |")
  rm -f "$WORK/ours.$format" "$WORK/cli.$format"
done

copied=$(ours "$WORK/hour.m4a" "$WORK/copy.m4a" format=m4a)
encoded=$(ours "$WORK/hour.m4a" "$WORK/encoded.m4a" format=m4a reencode=true)
cli_copied=$(cli "$WORK/hour.m4a" -c:a copy "$WORK/cli-copy.m4a")
rows+=("| 60-minute AAC source to M4A: stream copy / re-encoding, in Audiomill (CLI: -c:a copy / -c:a aac) | copy at least 20x faster | ${copied} s / ${encoded} s ($(ratio "$encoded" "$copied") faster; CLI copy ${cli_copied} s) |")

echo
printf '%s\n' "${rows[@]}"
