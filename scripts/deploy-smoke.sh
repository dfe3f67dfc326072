#!/usr/bin/env bash
# After a deployment (docs/deploy.md), checks the classifier end to end and prints what it saw:
#   1. GET  <app>/api/health answers 200 (waits for a cold start),
#   2. the function key of ClassifyImage (az functionapp function keys list; never printed),
#   3. GET  <app>/api/model with the key: the live model version (503 NoModel: nothing published yet),
#   4. POST <app>/api/classify with the key and the image: the answer,
#   5. uploads the image to the images container and waits for predictions/<name>.json (the blob
#      trigger, fed by Event Grid), then prints it.
# Usage: scripts/deploy-smoke.sh <resource group> <image file> [deployment name of infra/main.bicep, default: classifier]
# Needs: az (logged in as CLASSIFIER_OPERATOR_PRINCIPAL_ID: Storage Blob Data Contributor on images, Reader on predictions), curl.
# Environment: SMOKE_WAIT_SECONDS (per wait, default 300).
# Exit: 0 all seen; 1 a step failed; 2 usage; 3 no model published yet (health and keys work; train and publish first).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 <resource group> <image file> [main deployment name]" >&2; exit 2; }
rg="$1"
image="$2"
deployment="${3:-classifier}"
wait_seconds="${SMOKE_WAIT_SECONDS:-300}"
[ -f "$image" ] || { echo "no such image file: $image" >&2; exit 2; }

out() { az deployment group show -g "$rg" -n "$deployment" --query "properties.outputs.$1.value" -o tsv; }
func="$(out FUNCTION_APP_NAME)"
url="$(out FUNCTION_APP_URL)"
account="$(out STORAGE_ACCOUNT_NAME)"
images="$(out IMAGES_CONTAINER_NAME)"
predictions="$(out PREDICTIONS_CONTAINER_NAME)"
echo "app: $url  storage: $account ($images -> $predictions)"

fail() { echo "FAILED: $*" >&2; exit 1; }
body="$(mktemp)"
trap 'rm -f "$body" "$body.prediction"' EXIT
content_type() {
  case "${1,,}" in
    *.png) echo image/png ;; *.gif) echo image/gif ;; *.bmp) echo image/bmp ;; *.webp) echo image/webp ;;
    *.tif|*.tiff) echo image/tiff ;; *) echo image/jpeg ;;
  esac
}

# 1. Health (anonymous).
start=$SECONDS
deadline=$((SECONDS + wait_seconds))
until status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$url/api/health")" && [ "$status" = 200 ]; do
  [ $SECONDS -lt $deadline ] || fail "GET /api/health answered ${status:-nothing} for ${wait_seconds}s"
  sleep 5
done
echo "health: 200 after $((SECONDS - start))s"

# 2. The function key (the same key works for GetModel: both are AuthorizationLevel.Function).
key="$(az functionapp function keys list -g "$rg" -n "$func" --function-name ClassifyImage --query default -o tsv)"
[ -n "$key" ] || fail "no default function key for ClassifyImage"
echo "function key: found (not printed)"

# 3. The live model.
status="$(curl -s -o "$body" -w '%{http_code}' --max-time 60 -H "x-functions-key: $key" "$url/api/model")"
echo "model: HTTP $status $(head -c 300 "$body")"

# 4. One image through HTTP.
status="$(curl -s -o "$body" -w '%{http_code}' --max-time 120 -X POST -H "x-functions-key: $key" \
  -H "Content-Type: $(content_type "$image")" --data-binary "@$image" "$url/api/classify?top=3")"
echo "classify: HTTP $status $(head -c 600 "$body")"
if [ "$status" = 503 ] && grep -q NoModel "$body"; then
  echo "No model is published yet: health, routing and the function key work; uploads wait for a model." >&2
  echo "Train and publish one (docs/deploy.md), then run this again." >&2
  exit 3
fi
[ "$status" = 200 ] || fail "POST /api/classify answered $status"

# 5. One image through the blob trigger (Event Grid): upload, then wait for its prediction.
name="smoke-$(date -u +%Y%m%dT%H%M%SZ)-$RANDOM-$(basename "$image")"
az storage blob upload --auth-mode login --account-name "$account" -c "$images" -n "$name" -f "$image" \
  --content-type "$(content_type "$image")" -o none
echo "uploaded: $images/$name"
start=$SECONDS
deadline=$((SECONDS + wait_seconds))
until [ "$(az storage blob exists --auth-mode login --account-name "$account" -c "$predictions" -n "$name.json" --query exists -o tsv)" = true ]; do
  [ $SECONDS -lt $deadline ] || fail "no $predictions/$name.json after ${wait_seconds}s: is the Event Grid subscription there (scripts/deploy-eventgrid.sh)?"
  sleep 5
done
az storage blob download --auth-mode login --account-name "$account" -c "$predictions" -n "$name.json" -f "$body.prediction" -o none
echo "prediction after $((SECONDS - start))s: $(cat "$body.prediction")"
echo "OK: health, HTTP classification with the key, and the blob trigger all answered."
