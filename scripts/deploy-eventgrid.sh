#!/usr/bin/env bash
# Creates the Event Grid subscription that feeds the blob trigger (docs/deploy.md, step 3), as its own
# deployment of infra/eventgrid.bicep, once the Functions code is published and answering:
#   1. waits for GET <app>/api/health to answer 200 (the code runs),
#   2. waits for the host's blobs_extension system key (the webhook's key; not printed),
#   3. deploys infra/eventgrid.bicep, retrying: Event Grid validates the webhook when the subscription is
#      created, and a cold or restarting app can miss that handshake.
# Usage: scripts/deploy-eventgrid.sh <resource group> [deployment name of infra/main.bicep, default: classifier]
# Environment: DEPLOY_WAIT_SECONDS (per wait, default 600), DEPLOY_ATTEMPTS (default 5),
#              DEPLOY_RETRY_SECONDS (pause after the first failed attempt, growing linearly; default 30).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 <resource group> [main deployment name]" >&2; exit 2; }
rg="$1"
deployment="${2:-classifier}"
wait_seconds="${DEPLOY_WAIT_SECONDS:-600}"
attempts="${DEPLOY_ATTEMPTS:-5}"
retry_seconds="${DEPLOY_RETRY_SECONDS:-30}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out() { az deployment group show -g "$rg" -n "$deployment" --query "properties.outputs.$1.value" -o tsv; }
func="$(out FUNCTION_APP_NAME)"
url="$(out FUNCTION_APP_URL)"
topic="$(out EVENT_GRID_SYSTEM_TOPIC_NAME)"
images="$(out IMAGES_CONTAINER_NAME)"
if [ -z "$func" ] || [ -z "$url" ] || [ -z "$topic" ] || [ -z "$images" ]; then
  echo "deployment '$deployment' in '$rg' lacks the outputs of infra/main.bicep" >&2; exit 1
fi

echo "==> Waiting for $url/api/health (up to ${wait_seconds}s)"
deadline=$((SECONDS + wait_seconds))
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$url/api/health")" = 200 ]; do
  [ $SECONDS -lt $deadline ] || { echo "health did not answer 200: is the code published (step 2)?" >&2; exit 1; }
  sleep 10
done

echo "==> Waiting for the blobs_extension system key of $func"
deadline=$((SECONDS + wait_seconds))
until [ "$(az functionapp keys list -g "$rg" -n "$func" --query "systemKeys.blobs_extension != null" -o tsv 2>/dev/null)" = true ]; do
  [ $SECONDS -lt $deadline ] || { echo "no blobs_extension key: does the published package contain ClassifyUploadedImageEventGrid?" >&2; exit 1; }
  sleep 10
done

for attempt in $(seq 1 "$attempts"); do
  echo "==> Deploying infra/eventgrid.bicep (attempt $attempt of $attempts)"
  if az deployment group create -g "$rg" -n "$deployment-eventgrid" --template-file infra/eventgrid.bicep \
       --parameters functionAppName="$func" systemTopicName="$topic" imagesContainerName="$images" -o none; then
    echo "Event Grid subscription created: new blobs in '$images' now reach ClassifyUploadedImageEventGrid."
    exit 0
  fi
  if [ "$attempt" -lt "$attempts" ]; then sleep $((attempt * retry_seconds)); fi
done
echo "the Event Grid subscription could not be created after $attempts attempts (see the errors above)" >&2
exit 1
