#!/usr/bin/env bash
# `make run`: headwater serve on 127.0.0.1:PORT with a demo channel fed by an FFmpeg test source.
set -euo pipefail
port=${1:-8080}
base="http://127.0.0.1:${port}"
headwater serve --port "$port" &
server=$!
trap 'kill $pusher $server 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
mkdir -p .headwater-data
python3 -m services.demo --base-url "$base" --channel demo --mode long-post --log .headwater-data/demo-ffmpeg.log &
pusher=$!
cat <<MSG

Headwater is running on $base with the demo channel "demo" (FFmpeg test source, 3 renditions + AAC).
  HLS (CMAF):  $base/live/demo/hls/index.m3u8
  DASH:        $base/live/demo/dash/manifest.mpd
  Status:      $base/api/channels/demo
Playlists appear after the first 2 s segment. FFmpeg's log: .headwater-data/demo-ffmpeg.log
Ctrl-C stops everything.

MSG
wait $pusher
