#!/usr/bin/env bash
# The one test command: installs what the tests need, starts a private Azurite, runs every test
# project in the solution, stops Azurite (also on failure) and exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Debian's python3-torch puts libtorch 1.13 into the system library path. The tests run with it
# present to prove that TorchSharp never picks it up (it segfaults when it does). python3-torchvision
# makes the reference checkpoint and outputs for the torchvision weight-import tests (below). jq and
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

# A torchvision resnet18 checkpoint and PyTorch's outputs on a fixed batch (about 45 MB, not
# committed): made again only when missing or when the script that makes them changed.
fixture_script="$root/tests/fixtures/make_torchvision_fixture.py"
fixture_dir="$root/tests/fixtures/generated/torchvision"
fixture_hash="$(sha256sum "$fixture_script" | cut -d' ' -f1)"
if [ "$(cat "$fixture_dir/.script-sha256" 2>/dev/null)" != "$fixture_hash" ]; then
  echo "==> Generating the torchvision fixture (tests/fixtures/make_torchvision_fixture.py)"
  rm -rf "$fixture_dir"
  if ! /usr/bin/python3 "$fixture_script" "$fixture_dir"; then
    echo "The torchvision fixture needs Debian's python3-torch and python3-torchvision (/usr/bin/python3); run this script as root to install them." >&2
    exit 1
  fi
  echo "$fixture_hash" >"$fixture_dir/.script-sha256"
fi
export CLASSIFIER_TEST_TORCHVISION_FIXTURE="$fixture_dir"

# shellcheck source=scripts/azurite.sh
source "$root/scripts/azurite.sh"
azurite_start "$root"

echo "==> Building"
dotnet build ServerlessClassifier.sln -c Release -nologo -v q

echo "==> Testing"
log="$(mktemp)"
set +e
# One test project at a time (-m:1): the torch-heavy test processes each reach several GB (measured: ModelCore
# 8.5 GB, Functions 6.7 GB, TrainJob 11.5 GB, whose VGG state_dicts are over 500 MB each), and side by side
# they ran a 24 GiB machine out of memory. On two cores running them together gained little time anyway.
dotnet test ServerlessClassifier.sln -c Release --no-build -nologo -m:1 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over the test projects.
awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
rm -f "$log"
exit "$status"
