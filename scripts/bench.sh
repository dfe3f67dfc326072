#!/usr/bin/env bash
# The benchmark command: starts a private Azurite (for the cold-start figures), builds in Release and
# runs bench/, which prints the table and rewrites docs/benchmarks.md. Pass -- --quick for a short run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/azurite.sh
source "$root/scripts/azurite.sh"
azurite_start "$root"
export ClassifierStorage="$CLASSIFIER_TEST_STORAGE"
dotnet build bench -c Release -nologo -v q
dotnet run -c Release --no-build --project bench -- "$@"
