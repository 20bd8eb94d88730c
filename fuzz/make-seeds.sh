#!/usr/bin/env bash
# Seed corpora for the fuzz targets, generated (not committed): small audio files made
# by sox and ffmpeg, a few session TOMLs, a few encoded SubmitRequests.
# Usage: fuzz/make-seeds.sh [OUT]   (default fuzz/seeds; one folder per target)
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-seeds}"
mkdir -p "$out/decode" "$out/session_toml" "$out/proto_request" "$out/dawproject"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# decode: the first byte selects the extension hint (index into the target's EXTS).
seed() { # seed INDEX FILE
  { printf "\\x$(printf %02x "$1")"; cat "$2"; } > "$out/decode/$(basename "$2")"
}
sox -n -r 8000 -c 1 -b 16 "$tmp/m16.wav" synth 0.05 sine 440
sox -n -r 8000 -c 2 -b 24 "$tmp/s24.wav" synth 0.05 sine 440
sox -n -r 8000 -c 1 -b 8 "$tmp/m8.wav" synth 0.05 sine 440
sox -n -r 8000 -c 2 -e floating-point -b 32 "$tmp/f32.wav" synth 0.05 sine 440
sox -n -r 8000 -c 1 -b 16 "$tmp/m.flac" synth 0.05 sine 440
sox -n -r 48000 -c 2 -b 24 "$tmp/s.flac" synth 0.02 sine 440
sox -n -r 8000 -c 1 "$tmp/m.ogg" synth 0.1 sine 440
sox -n -r 8000 -c 1 -b 16 "$tmp/m.aiff" synth 0.05 sine 440
ff() { ffmpeg -v error -y -f lavfi -i "sine=frequency=440:sample_rate=8000:duration=0.1" "$@"; }
ff -c:a libmp3lame -b:a 32k "$tmp/m.mp3"
ff -c:a aac -b:a 24k "$tmp/m.m4a"
ff -c:a alac "$tmp/alac.m4a"
ff -c:a pcm_s16be "$tmp/m.caf"
ff -c:a pcm_s16be "$tmp/ff.aiff"
for f in m16.wav s24.wav m8.wav f32.wav; do seed 0 "$tmp/$f"; done
for f in m.flac s.flac; do seed 1 "$tmp/$f"; done
seed 2 "$tmp/m.ogg"
seed 3 "$tmp/m.mp3"
for f in m.aiff ff.aiff; do seed 4 "$tmp/$f"; done
for f in m.m4a alac.m4a; do seed 5 "$tmp/$f"; done
seed 6 "$tmp/m.caf"

# session_toml: the demo session and a few small ones.
sed -n '/^const SESSION: &str = r#"/,/^"#;/p' ../client/src/demo.rs \
  | sed '1s/^const SESSION: &str = r#"//;$d' > "$out/session_toml/demo.toml"
cat > "$out/session_toml/min.toml" <<'T'
[session]
sample_rate = 48000

[[track]]
name = "Kick"
file = "kick.wav"
T
cat > "$out/session_toml/bus.toml" <<'T'
[session]
name = "S"
sample_rate = 44100
tail_s = 1.5

[[track]]
name = "Vox"
file = "vox.flac"
offset_s = 2.5
pan = -0.5
sends = [ { bus = "Hall", level_db = -6.0, pre_fader = true } ]
automation = { gain_db = [[0.0, -60.0], [1.0, 0.0]] }

[[bus]]
name = "Hall"
reverb = { ir = "hall.wav", predelay_ms = 20.0 }

[[deliverable]]
name = "cd"
preset = "cd"
T

# proto_request: SubmitRequest { session: Session { name, sample_rate, tail_s, tracks:
# [Track { name, stem: Stem { blake3, name }, gain_db }], source } }, encoded by hand.
python3 - "$out/proto_request" "$out/session_toml/min.toml" <<'P'
import struct, sys
def varint(n):
    b = bytearray()
    while True:
        x = n & 0x7F; n >>= 7
        b.append(x | (0x80 if n else 0))
        if not n: return bytes(b)
def ld(field, payload): return varint(field << 3 | 2) + varint(len(payload)) + payload
def vi(field, n): return varint(field << 3) + varint(n)
def dbl(field, x): return varint(field << 3 | 1) + struct.pack('<d', x)
stem = ld(1, b'a' * 64) + ld(2, b'kick.wav')
track = ld(1, b'Kick') + ld(2, stem) + dbl(3, -3.0) + dbl(4, 0.25) + dbl(8, 0.5)
session = ld(1, b'Song') + vi(2, 48000) + dbl(3, 1.0) + ld(4, track) + ld(4, track) + ld(8, b'song.toml')
open(sys.argv[1] + '/one.bin', 'wb').write(ld(1, session))
open(sys.argv[1] + '/cpu.bin', 'wb').write(ld(1, session) + vi(2, 2))
open(sys.argv[1] + '/empty_session.bin', 'wb').write(ld(1, b''))
# SubmitRequest { document (10): SessionDocument { toml, source, stems: {path: hash} } }
toml = open(sys.argv[2]).read().encode()
entry = ld(1, b'kick.wav') + ld(2, b'b' * 64)
doc = ld(1, toml) + ld(2, b'min.toml') + ld(3, entry)
open(sys.argv[1] + '/document.bin', 'wb').write(ld(10, doc))
P
# dawproject: small project zips (project.xml and a tiny WAV), built with zipfile.
python3 - "$out/dawproject" "$tmp/m16.wav" <<'P'
import sys, zipfile
out, wav = sys.argv[1], open(sys.argv[2], 'rb').read()
xml = """<?xml version="1.0" encoding="UTF-8"?>
<Project version="1.0"><Application name="seed" version="1"/>
<Transport><Tempo unit="bpm" value="120" id="tempo"/></Transport>
<Structure>
<Track id="t1" name="A"><Channel role="regular" audioChannels="1" destination="m" id="c1">
<Devices><Equalizer deviceName="EQ" deviceRole="audioFX"><Band type="bell"><Freq unit="hertz" value="1000" id="f"/><Gain unit="decibel" value="3"/></Band></Equalizer>
<Compressor deviceName="C" deviceRole="audioFX"><Threshold unit="decibel" value="-20"/><Ratio unit="percent" value="50"/></Compressor></Devices>
<Volume unit="linear" value="0.5" id="v"/><Pan unit="normalized" value="0.5" id="p"/>
<Sends><Send destination="fx" type="pre"><Volume unit="decibel" value="-6" id="sv"/></Send></Sends></Channel></Track>
<Track id="tf" name="FX"><Channel role="effect" id="fx" destination="m"><Volume unit="decibel" value="0"/></Channel></Track>
<Track id="mt" name="Master"><Channel role="master" id="m"><Volume unit="linear" value="1"/></Channel></Track>
</Structure>
<Arrangement><Lanes timeUnit="beats"><Lanes track="t1"><Clips>
<Clip time="1" duration="2" playStart="0.5" loopStart="0" loopEnd="1" fadeInTime="0.1" fadeOutTime="0.1" contentTimeUnit="beats">
<Warps contentTimeUnit="seconds"><Audio channels="1" sampleRate="8000" duration="0.05"><File path="audio/a.wav"/></Audio>
<Warp time="0" contentTime="0"/><Warp time="1" contentTime="0.5"/></Warps></Clip></Clips>
<Points><Target parameter="v"/><RealPoint time="0" value="1" interpolation="hold"/><RealPoint time="2" value="0.5"/></Points>
</Lanes></Lanes>
<TempoAutomation><Target parameter="tempo"/><RealPoint time="0" value="100"/><RealPoint time="4" value="140"/></TempoAutomation>
</Arrangement></Project>
"""
with zipfile.ZipFile(out + '/song.dawproject', 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('project.xml', xml)
    z.writestr('audio/a.wav', wav)
with zipfile.ZipFile(out + '/stored.dawproject', 'w', zipfile.ZIP_STORED) as z:
    z.writestr('project.xml', xml.replace('audio/a.wav', '../a.wav'))
P

echo "seeds in $(cd "$out" && pwd): $(ls "$out/decode" | wc -l) audio, $(ls "$out/session_toml" | wc -l) TOML, $(ls "$out/proto_request" | wc -l) requests"
