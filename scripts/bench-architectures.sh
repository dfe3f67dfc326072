#!/usr/bin/env bash
# The architecture benchmark: for every backbone of the registry, our exported ONNX graph against the same
# torchvision model exported by torch.onnx.export (Debian's python3-torch, /usr/bin/python3), both run by
# ONNX Runtime in the same run: latency and memory. Prints the table and rewrites its section of
# docs/benchmarks.md. Pass -- --only vgg16,densenet121 for a few rows (the file is then left alone).
# Takes about half an hour on two cores and needs about 2 GB of free disk at a time (one VGG's files).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! /usr/bin/python3 -c "import torch, torchvision" 2>/dev/null; then
  echo "The architecture benchmark needs Debian's python3-torch and python3-torchvision (apt-get install python3-torch python3-torchvision)." >&2
  exit 1
fi
dotnet build bench/Architectures -c Release -nologo -v q
dotnet run -c Release --no-build --project bench/Architectures -- "$@"
