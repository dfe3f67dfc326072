#!/usr/bin/env bash
# The fan-out benchmark: images/s of a fanned-out classification (classify --container --distributed) against the
# number of consumers, each standing for one Functions instance, over a private Azurite. Rewrites
# docs/benchmarks-fanout.md. Takes about ten minutes on two cores. Pass -- --images N for another set size.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/azurite.sh
source "$root/scripts/azurite.sh"
azurite_start "$root"
export ClassifierStorage="$CLASSIFIER_TEST_STORAGE"
dotnet build bench/FanOut -c Release -nologo -v q
dotnet run -c Release --no-build --project bench/FanOut -- "$@"
