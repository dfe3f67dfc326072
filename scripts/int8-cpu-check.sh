#!/usr/bin/env bash
# int8 on a CPU without VNNI, emulated: trains small models on Twitter emoji (9 categories) with the real CLI (int8
# with 8-bit weights; int8 with 7-bit weights; with --fp32-control also fp32), classifies held-out emoji with each,
# natively and under qemu-user emulating an AVX2-only CPU (-cpu Haswell: AVX2 and FMA, no AVX-512, no VNNI), and
# compares each model's answers on the two CPUs. ONNX Runtime picks its integer kernels from CPUID, which qemu
# emulates, so the emulated run uses the AVX2 kernels (uint8 x int8 pairs added into saturating 16 bits) that an
# AVX2-only serving CPU would use. Expected: 7-bit (and fp32) answers equal up to float rounding, 8-bit ones not.
# Slow (emulation: 10-20 s per image on a 2-core EPYC): a benchmark, never part of the test suite or CI.
# Usage: scripts/int8-cpu-check.sh [--per-class N (emoji per category, 1 in 5 held out; default 30)]
#          [--images N (held-out images classified, spread over the categories; default 20)]
#          [--fp32-control (the fp32 model too: its answers should match up to float rounding)] [--work DIR]
# qemu-x86_64-static: $QEMU, else on the PATH, else fetched once with apt-get download qemu-user-static into the work folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
per_class=30
images=20
models=(int8-8bit int8-7bit)
work=/tmp/int8-cpu-check
while [ $# -gt 0 ]; do
  case "$1" in
    --per-class) per_class="$2"; shift 2 ;;
    --images) images="$2"; shift 2 ;;
    --fp32-control) models=(fp32 int8-8bit int8-7bit); shift ;;
    --work) work="$2"; shift 2 ;;
    *) echo "usage: scripts/int8-cpu-check.sh [--per-class N] [--images N] [--fp32-control] [--work DIR]" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
work="$(cd "$work" && pwd)"

qemu="${QEMU:-$(command -v qemu-x86_64-static || true)}"
if [ -z "$qemu" ]; then
  qemu="$work/qemu/usr/bin/qemu-x86_64-static"
  if [ ! -x "$qemu" ]; then
    (cd "$work" && rm -f qemu-user-static_*.deb && apt-get download qemu-user-static && dpkg -x qemu-user-static_*.deb qemu)
  fi
fi
dotnet_host="$(readlink -f "$(command -v dotnet)")"
echo "CPU (native): $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E 'avx|vnni' | tr '\n' ' ')"
echo "Emulated: $("$qemu" --version | head -1), -cpu Haswell (AVX2, FMA; no AVX-512, no VNNI)"

[ -d node_modules/emoji-datasource-twitter ] || npm ci --no-audit --no-fund
dotnet build src/TrainJob -c Release -nologo -v q
trainjob=(dotnet src/TrainJob/bin/Release/net10.0/ServerlessClassifier.TrainJob.dll)
data="$work/data"
rm -rf "$data"
node scripts/emoji-dataset.mjs "$data" --all --per-class "$per_class" > /dev/null

# The held-out images to classify: round-robin over the categories, in name order.
sample="$work/sample"
rm -rf "$sample"
python3 -c '
import os, shutil, sys
source, target, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
folders = {c: sorted(os.listdir(os.path.join(source, c))) for c in sorted(os.listdir(source))}
picked, i = [], 0
while len(picked) < count and any(i < len(f) for f in folders.values()):
    picked += [(c, f[i]) for c, f in folders.items() if i < len(f)][: count - len(picked)]
    i += 1
for c, name in picked:
    os.makedirs(os.path.join(target, c), exist_ok=True)
    shutil.copy(os.path.join(source, c, name), os.path.join(target, c, name))
' "$data/holdout" "$sample" "$images"
echo "Data: $(find "$data/train" -name '*.png' | wc -l) training images (9 categories); $(find "$sample" -name '*.png' | wc -l) of the $(find "$data/holdout" -name '*.png' | wc -l) held-out images classified"

# Classifies the sample with the model under emulation, 16 images per process: .NET under qemu-user now and then dies
# of a segmentation fault (5 of 18 processes of 16 images in one run), so a chunk that fails is run again (the answers are
# deterministic), at most five times.
classify_emulated() {
  local model="$1" files chunk try
  : > "$work/$model.haswell.jsonl"
  : > "$work/$model.haswell.err"
  mapfile -t files < <(find "$sample" -name '*.png' | sort)
  for ((i = 0; i < ${#files[@]}; i += 16)); do
    chunk=("${files[@]:i:16}")
    for try in 1 2 3 4 5; do
      # .NET's W^X double mapping of JIT code crashes under qemu-user at once: off for the emulated runs only.
      if DOTNET_EnableWriteXorExecute=0 "$qemu" -cpu Haswell "$dotnet_host" src/TrainJob/bin/Release/net10.0/ServerlessClassifier.TrainJob.dll \
        classify --model "$work/$model" --json --top 9 "${chunk[@]}" > "$work/chunk.jsonl" 2>> "$work/$model.haswell.err"; then
        cat "$work/chunk.jsonl" >> "$work/$model.haswell.jsonl"
        break
      fi
      [ "$try" -lt 5 ] || { echo "classify under qemu failed five times for $model: see $work/$model.haswell.err" >&2; exit 1; }
      echo "$model: images $i-$((i + ${#chunk[@]} - 1)) failed under emulation (try $try), again"
    done
  done
}

# The int8 graphs are served whatever their check says (the comparison is between CPUs, not against fp32): a plan
# file that allows any accuracy drop.
declare -A plan=([fp32]='"precision": "fp32"' [int8-8bit]='"precision": "int8", "int8WeightBits": 8, "maxAccuracyDropPoints": 100' \
  [int8-7bit]='"precision": "int8", "int8WeightBits": 7, "maxAccuracyDropPoints": 100')
for model in "${models[@]}"; do
  rm -rf "${work:?}/$model"
  echo "{ \"mode\": \"head\", \"precision\": { ${plan[$model]} } }" > "$work/$model.plan.json"
  "${trainjob[@]}" train --data "$data/train" --output "$work/$model" --plan "$work/$model.plan.json" --device cpu --seed 42 > "$work/$model.train.log" 2>&1 \
    || { echo "train $model failed: see $work/$model.train.log" >&2; exit 1; }
  grep -m1 '^Precision' "$work/$model.train.log" || true
  "${trainjob[@]}" classify --model "$work/$model" --json --top 9 "$sample" > "$work/$model.native.jsonl"
  start=$(date +%s)
  classify_emulated "$model"
  echo "$model: classified under emulation in $(( $(date +%s) - start )) s"
done

python3 -c '
import json, sys
work, models = sys.argv[1], sys.argv[2:]
def load(path):
    rows = {}
    for line in open(path):
        d = json.loads(line)
        rows[d["image"]] = {p["label"]: p["probability"] for p in d["top"]}
    return rows
truth = lambda name: name.replace("\\", "/").split("/")[-2]
top = lambda p: max(p, key=p.get)
print()
print("| model | images | top-1 agreement, emulated AVX2 vs native VNNI | largest probability difference | accuracy native | accuracy emulated |")
print("|---|---:|---:|---:|---:|---:|")
for model in models:
    native, emulated = load(f"{work}/{model}.native.jsonl"), load(f"{work}/{model}.haswell.jsonl")
    names = sorted(native)
    assert names == sorted(emulated), f"{model}: the two runs classified different images"
    agree = sum(top(native[n]) == top(emulated[n]) for n in names)
    diff = max(abs(native[n][l] - emulated[n].get(l, 0.0)) for n in names for l in native[n])
    acc = lambda rows: sum(top(rows[n]) == truth(n) for n in names) / len(names)
    print(f"| {model} | {len(names)} | {agree / len(names):.1%} ({agree}) | {diff:.2g} | {acc(native):.1%} | {acc(emulated):.1%} |")
' "$work" "${models[@]}"
