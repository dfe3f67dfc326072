#!/usr/bin/env bash
# The quick start: everything the product does, locally, on an embedded default.
#   1. starts a private Azurite (blob, queue, table) and installs the npm tools (Azurite, the emoji images);
#   2. builds a labelled sample set from real images (Twitter emoji: smileys, animals, food, flags);
#   3. trains a classifier on the default pretrained backbone (ImageNet ResNet-18, head mode) and
#      publishes it to the local model store;
#   4. evaluates it on held-out images;
#   5. uploads sample images to the images container and shows the predictions the blob trigger writes
#      (under the real Functions host when FUNCTIONS_HOST_DIR names a folder with its run.sh, or
#      when `func` is installed; otherwise the same function classes run in-process), then answers one
#      HTTP classification.
# Outputs stay in out/demo/ (model, report.html, evaluation.json). Azurite is stopped at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="$root/out/demo"
step() { printf '\n==> [%s/6] %s\n' "$1" "$2"; }
started=$SECONDS

step 1 "Starting Azurite and installing the npm tools"
# shellcheck source=scripts/azurite.sh
source "$root/scripts/azurite.sh"
azurite_start "$root"
export ClassifierStorage="$CLASSIFIER_TEST_STORAGE"

step 2 "Building (Release)"
dotnet build src/TrainJob -c Release -nologo -v q
dotnet build samples/LocalDemo -c Release -nologo -v q
trainjob() { dotnet "$root/src/TrainJob/bin/Release/net10.0/ServerlessClassifier.TrainJob.dll" "$@"; }

step 3 "Preparing the sample set (real emoji images, 4 classes)"
node scripts/emoji-dataset.mjs "$out/data"

step 4 "Training on the default pretrained backbone (head mode) and publishing"
rm -rf "$out/model"
trainjob train --data "$out/data/train" --output "$out/model" --mode head --publish

step 5 "Evaluating on held-out images"
trainjob evaluate --model current --data "$out/data/holdout" --json "$out/evaluation.json"

step 6 "Uploading sample images: the blob trigger classifies them"
demo="$root/samples/LocalDemo/bin/Release/net10.0/ServerlessClassifier.LocalDemo.dll"
host_kind=""
if [ -n "${FUNCTIONS_HOST_DIR:-}" ] && [ -x "$FUNCTIONS_HOST_DIR/run.sh" ]; then host_kind=run.sh
elif command -v func >/dev/null 2>&1; then host_kind=func
fi
if [ -n "$host_kind" ]; then
  key="${FUNCTIONS_HOST_FUNCTION_KEY:-local-function-key-00000000000000000000000000}"
  if [ "$host_kind" = run.sh ]; then
    echo "Starting the Azure Functions host ($FUNCTIONS_HOST_DIR/run.sh) on the published app against this Azurite."
    dotnet publish src/Functions -c Release -o "$out/app" -nologo -v q
    # The host wants a language-workers folder beside itself; the app's own worker.config.json is all it needs.
    mkdir -p "$out/workers"
    env AzureWebJobsStorage="$ClassifierStorage" ClassifierStorage="$ClassifierStorage" FUNCTIONS_WORKER_RUNTIME=dotnet-isolated \
      "AzureWebJobs.ClassifyUploadedImageEventGrid.Disabled=true" Classifier__ImagesContainer=images \
      "Classifier__SweepSchedule=0 */5 * * * *" Classifier__ShardQueue=classify-shards languageWorkers__workersDirectory="$out/workers" FUNCTIONS_HOST_FUNCTION_KEY="$key" \
      bash "$FUNCTIONS_HOST_DIR/run.sh" "$out/app" 7071 >"$out/func.log" 2>&1 &
  else
    echo "Azure Functions Core Tools found: starting the Functions host (func start) against this Azurite."
    dotnet build src/Functions -c Release -nologo -v q
    # The host resolves the blob trigger's and the sweep's settings itself (no defaults): set them here too.
    (cd src/Functions && env AzureWebJobsStorage="$ClassifierStorage" FUNCTIONS_WORKER_RUNTIME=dotnet-isolated \
      "AzureWebJobs.ClassifyUploadedImageEventGrid.Disabled=true" Classifier__ImagesContainer=images \
      "Classifier__SweepSchedule=0 */5 * * * *" Classifier__ShardQueue=classify-shards func start --port 7071 >"$out/func.log" 2>&1) &
  fi
  func_pid=$!
  trap 'kill $func_pid 2>/dev/null || true; azurite_stop' EXIT
  for _ in $(seq 1 60); do curl -fs http://localhost:7071/api/health >/dev/null && break; sleep 2; done
  dotnet "$demo" "$out/data/holdout" 2 --host func
  sample="$(find "$out/data/holdout/flags" -name '*.png' | sort | head -1)"
  echo "curl -X POST --data-binary @$sample -H 'Content-Type: image/png' -H 'x-functions-key: <key>' 'http://localhost:7071/api/classify?top=3'"
  curl -fsS -X POST --data-binary "@$sample" -H 'Content-Type: image/png' -H "x-functions-key: $key" 'http://localhost:7071/api/classify?top=3'; echo
  echo "    the host's log: $out/func.log"
else
  dotnet "$demo" "$out/data/holdout" 2 --host in-process
fi

accuracy="$(node -e 'console.log((require(process.argv[1]).accuracy*100).toFixed(1))' "$out/evaluation.json")"
printf '\n==> Done in %ss\n' "$((SECONDS - started))"
echo "    held-out accuracy: ${accuracy} %  (details: $out/evaluation.json)"
echo "    model:             $out/model (manifest.json, model.onnx, model.safetensors); training report: $out/model/report.html"
echo "    published:         the 'models' container of the demo's Azurite (stopped now; run your own with npx azurite)"
