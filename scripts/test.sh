#!/usr/bin/env bash
# The one test command: installs what the tests need, starts a private Azurite, builds the solution, runs the test
# projects in two lanes side by side (the parts with VGG models one after the other), stops Azurite (also on
# failure), prints one timing line per project (or part of one) and exits non-zero on any failure.
#
#   scripts/test.sh          every run: everything but the full architecture matrix (tests with the trait Category=Full)
#   scripts/test.sh --full   everything, including every registry architecture through the CLI at full size: run it
#                            before landing a change to backbones, export or quantisation
#   --results DIR            also write each project's TRX file (every test's outcome and duration) into DIR
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

run="every run"
filter="Category!=Full"
for argument in "$@"; do
  case "$argument" in
    --full) run="full run"; filter="" ;;
    --results) results_next=1 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *)
      if [ -n "${results_next:-}" ]; then
        mkdir -p "$argument"; trx_directory="$(cd "$argument" && pwd)"; results_next=""
      else
        echo "unknown argument: $argument (scripts/test.sh [--full] [--results DIR])" >&2; exit 2
      fi ;;
  esac
done
if [ -n "${results_next:-}" ]; then echo "--results needs a folder" >&2; exit 2; fi
started=$SECONDS

# Debian's python3-torch puts libtorch 1.13 into the system library path. The tests run with it
# present to prove that TorchSharp never picks it up (it segfaults when it does). python3-torchvision
# makes the reference checkpoints and outputs for the torchvision weight-import tests (below). jq and
# curl run the Custom Vision export script in its test; shellcheck checks the scripts. Headless chromium (with
# its WebDriver, chromium-driver, and a font) drives the app's page and renders the monitor report in their tests.
packages=(python3-torch python3-torchvision jq curl shellcheck chromium chromium-driver fonts-liberation)
if [ -f /etc/debian_version ] && ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> Installing ${packages[*]} with apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    echo "==> Some of ${packages[*]} are not installed and this is not root: the tests that need them fail or check less"
  fi
fi
if [ -f /usr/lib/x86_64-linux-gnu/libtorch_cpu.so ]; then
  export CLASSIFIER_TEST_REQUIRE_SYSTEM_LIBTORCH=1
fi

# The reference files that Debian's PyTorch makes (tests/fixtures/*.py: torchvision checkpoints and PyTorch's outputs
# on them) are kept outside the clone, keyed by each script's SHA-256, and made by the tests when missing
# (tests/Shared/ReferencePython.cs): a fresh clone on the same machine makes none of them again.
export CLASSIFIER_TEST_REFERENCE_CACHE="${CLASSIFIER_TEST_REFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/serverless-classifier/test-references}"

# shellcheck source=scripts/azurite.sh
source "$root/scripts/azurite.sh"
azurite_start "$root"

echo "==> Building"
build_started=$SECONDS
dotnet build ServerlessClassifier.sln -c Release -nologo -v q
build_seconds=$((SECONDS - build_started))

echo "==> Testing ($run${filter:+: --filter $filter; scripts/test.sh --full runs the full matrix too})"
results="$(mktemp -d -t classifier-tests-XXXXXX)"
# "N passed, N failed, N skipped", summed over the dotnet test logs given.
counts() {
  awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
       END { printf "%d passed, %d failed, %d skipped", p, f, s }' "$@"
}
# Runs one part: a test project, or PROJECT:architectures / PROJECT:others (its ArchitectureTests class, or the rest),
# its output prefixed with the part's name; writes the exit status and seconds to $results.
run_part() {
  local part="$1" project="${1%%:*}" began=$SECONDS status expression="$filter"
  case "$part" in
    *:architectures) expression="${expression:+$expression&}FullyQualifiedName~.ArchitectureTests." ;;
    *:others) expression="${expression:+$expression&}FullyQualifiedName!~.ArchitectureTests." ;;
  esac
  local key="${part/:/-}" options=()
  [ -z "$expression" ] || options+=(--filter "$expression")
  [ -z "${trx_directory:-}" ] || options+=(--logger "trx;LogFileName=$key.trx" --results-directory "$trx_directory")
  set +e
  dotnet test "tests/$project/$project.csproj" -c Release --no-build -nologo "${options[@]}" 2>&1 \
    | tee "$results/$key.log" | sed -u "s/^/[$part] /"
  status=${PIPESTATUS[0]}
  set -e
  echo "$status $((SECONDS - began))" >"$results/$key.status"
}
run_lane() {
  for part in "$@"; do run_part "$part"; done
}
# Two lanes. The parts that hold VGG models (TrainJob's ArchitectureTests, ModelCore.Tests) run one after the other:
# each reaches several GB (measured in the every run: 10.1 GB and 6.5 GB; in the full run TrainJob reached 11.5 GB and
# ModelCore 8.5 GB), and side by side the torch projects ran a 24 GiB machine out of memory. Beside them run
# Functions.Tests (ONNX Runtime only; 0.3 GB), Infra.Tests, and in the every run TrainJob's other tests (ResNet-18
# only; 4.4 GB), which otherwise would run after the architectures: these leave much of the CPU idle (TrainJob's
# architecture tests used 0.7 of the 2 cores), waiting on the disk, storage and the Functions host.
if [ -n "$filter" ]; then
  heavy=(TrainJob.Tests:architectures ModelCore.Tests)
  light=(Functions.Tests TrainJob.Tests:others Infra.Tests)
else
  heavy=(TrainJob.Tests ModelCore.Tests)
  light=(Functions.Tests Infra.Tests)
fi
run_lane "${heavy[@]}" &
heavy_lane=$!
run_lane "${light[@]}" &
light_lane=$!
wait "$heavy_lane" "$light_lane" || true

# One line per part and one for the run: test counts (from dotnet test's summary line) and wall time.
status=0
duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
echo "==> Results ($run)"
printf '  %-31s %s\n' "build" "$(duration "$build_seconds")"
for part in "${heavy[@]}" "${light[@]}"; do
  key="${part/:/-}"
  read -r code seconds <"$results/$key.status" 2>/dev/null || { code=1; seconds=0; }
  [ "$code" = 0 ] || status=1
  printf '  %-31s %s  %s%s\n' "$part" "$(duration "$seconds")" "$(counts "$results/$key.log" 2>/dev/null)" "$([ "$code" = 0 ] || echo "  (exit $code)")"
done
printf '  %-31s %s\n' "all" "$(counts "$results"/*.log)"
printf '  %-31s %s (install, build and tests)\n' "total" "$(duration $((SECONDS - started)))"
rm -rf "$results"
exit "$status"
