#!/usr/bin/env bash
# The one test command: installs what the tests need, starts a private Azurite, runs every test
# project in the solution, stops Azurite (also on failure) and exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Debian's python3-torch puts libtorch 1.13 into the system library path. The tests run with it
# present to prove that TorchSharp never picks it up (it segfaults when it does).
if [ -f /etc/debian_version ] && ! dpkg -s python3-torch >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> Installing python3-torch (a system libtorch for the loader test)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
  else
    echo "==> python3-torch is not installed and this is not root: the system-libtorch case is not exercised"
  fi
fi
if [ -f /usr/lib/x86_64-linux-gnu/libtorch_cpu.so ]; then
  export CLASSIFIER_TEST_REQUIRE_SYSTEM_LIBTORCH=1
fi

# shellcheck source=scripts/azurite.sh
source "$root/scripts/azurite.sh"
azurite_start "$root"

echo "==> Building"
dotnet build ServerlessClassifier.sln -c Release -nologo -v q

echo "==> Testing"
log="$(mktemp)"
set +e
dotnet test ServerlessClassifier.sln -c Release --no-build -nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over the test projects.
awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
rm -f "$log"
exit "$status"
