#!/usr/bin/env bash
# Training killed mid-run (SIGKILL: no Ctrl-C handler, no cleanup) resumes from its last epoch checkpoint.
# Builds the training job (Release), makes a small emoji set (20 per class), starts a 4-epoch finetune run,
# kills it as soon as "epoch 1/4" is printed, reruns the same command with --resume and checks that it says
# it resumed after epoch >= 1, finishes "epoch 4/4" and exits 0.
# Usage: bash scripts/reliability/kill-resume.sh [work-folder under /tmp]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-$(mktemp -d -t kill-resume-XXXXXX)}"
mkdir -p "$work"
cd "$root"
[ -d node_modules/emoji-datasource-twitter ] || npm ci --no-audit --no-fund --loglevel=error
dotnet build src/TrainJob -c Release -nologo -v quiet >/dev/null
trainjob() { dotnet "$root/src/TrainJob/bin/Release/net10.0/ServerlessClassifier.TrainJob.dll" "$@"; }

rm -rf "$work/data" "$work/model"
node scripts/emoji-dataset.mjs "$work/data" --per-class 20 >/dev/null
args=(train --data "$work/data/train" --output "$work/model" --mode finetune --epochs 4 --batch-size 16)

echo "==> run 1: killed with SIGKILL after epoch 1/4"
trainjob "${args[@]}" >"$work/run1.log" 2>&1 &
pid=$!
until grep -q "epoch 1/4" "$work/run1.log"; do
  if ! kill -0 "$pid" 2>/dev/null; then echo "run 1 ended before epoch 1/4:"; cat "$work/run1.log"; exit 1; fi
  sleep 0.2
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
grep -E "epoch [0-9]+/4" "$work/run1.log" | sed 's/^/    /'
if grep -q "epoch 4/4" "$work/run1.log"; then echo "run 1 finished before it was killed: nothing shown"; exit 1; fi

echo "==> run 2: the same command with --resume"
status=0
trainjob "${args[@]}" --resume >"$work/run2.log" 2>&1 || status=$?
grep -E "Resumed from|epoch [0-9]+/4|^Model:" "$work/run2.log" | sed 's/^/    /'
after=$(grep -oE "Resumed from .* after epoch [0-9]+" "$work/run2.log" | grep -oE "[0-9]+$" || echo 0)
if [ "$status" -ne 0 ]; then echo "FAIL: run 2 exited $status"; tail -20 "$work/run2.log"; exit 1; fi
if [ "$after" -lt 1 ]; then echo "FAIL: run 2 did not say it resumed after epoch >= 1"; exit 1; fi
if ! grep -q "epoch 4/4" "$work/run2.log"; then echo "FAIL: run 2 did not finish epoch 4/4"; exit 1; fi
echo "PASS: killed after epoch 1, resumed after epoch $after, finished epoch 4/4, exit 0 (logs in $work)"
