#!/bin/bash
# can the 8-epoch proxy on glyphs:focus=hard reach 60-85% with its 32-epoch baseline below ~92%?
# run from the repository root: docs/measurements/glyphs-hard-recipe-2026-11-27/sweep.sh "NAME FLAGS..." ...; results in runs/item1/
mkdir -p runs/item1
B="--baseline resnet50 --data glyphs:focus=hard --proxy-resolution 40 --proxy-width 0.125 --batch-size 64 --json"
run() { name=$1; shift; [ -s runs/item1/$name.json ] && return; echo "$(date +%T) $name: $*"; .venv/bin/scaler train $B "$@" > runs/item1/$name.json.tmp 2> runs/item1/$name.err && mv runs/item1/$name.json.tmp runs/item1/$name.json; }
for spec in "$@"; do run $spec; done
