#!/usr/bin/env bash
# The training memory benchmark: peak resident memory of `trainjob train` (one process per run, the Release
# build of this checkout) on 2,000 and on 20,000 synthetic images, in head, finetune and full mode; the goal
# is at most 1.2x from the smaller set to the larger. Prints the table and rewrites its section of
# docs/benchmarks.md. Pass -- --before <another build's ServerlessClassifier.TrainJob.dll> to compare with it,
# -- --sizes 500,5000 for smaller sets, or -- --modes head for one mode (the file is then left alone).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dotnet build ServerlessClassifier.sln -c Release -nologo -v q
dotnet run -c Release --no-build --project bench/TrainingMemory -- "$@"
