#!/usr/bin/env bash
# Moves a Custom Vision image-classification project to ServerlessClassifier: copies every tagged image
# into a blob container (the training container) and writes a manifest (CSV image,label) that
# `trainjob train --data <manifest>` reads, and the project's tag ids beside it (<manifest>.tags.json, e.g.
# customvision.tags.json), which training records in the model so that its Custom Vision-compatible API answers
# with the project's own tag ids.
#
# NOT RUN AGAINST THE LIVE SERVICE. It follows the published Custom Vision Training API v3.3 reference
# (GET projects/{id}, projects/{id}/tags, projects/{id}/images/tagged with take/skip paging; images carry
# originalImageUri and tags[].tagName) and is tested against recorded responses of that shape
# (tests/fixtures/customvision) served locally, with the uploads going to Azurite.
#
# Usage:
#   export CUSTOMVISION_TRAINING_KEY=<training key>
#   scripts/export-customvision.sh --endpoint https://<resource>.cognitiveservices.azure.com \
#     --project <project id> --container-url 'https://<account>.blob.core.windows.net/training?<SAS>' \
#     [--prefix customvision/] [--manifest customvision.csv] [--page-size 256]
# The SAS needs create and write permission on the container, e.g.:
#   az storage container generate-sas --account-name <account> --name training --permissions cw \
#     --expiry <date> --auth-mode login --as-user -o tsv
# Then: trainjob train --data customvision.csv --output model   (blob names resolve in the training container)
#
# A Multilabel project (settings.classificationType) is exported with every tag of an image: the manifest is
# image,labels with the tags joined by ';' (an image tagged only with the project's Negative tag gets an empty cell:
# a negative, which a multi-label model learns from). Train it with: trainjob train --data <manifest> --multilabel.
# In a Multiclass project, images with more than one tag are listed and left out: a multi-class model takes one label
# per image. Needs bash, curl and jq. The key and the SAS are never printed.
set -euo pipefail

endpoint="" project="" container_url="" prefix="customvision/" manifest="customvision.csv" take=256
while [ $# -gt 0 ]; do
  case "$1" in
    --endpoint) endpoint="${2%/}"; shift 2 ;;
    --project) project="$2"; shift 2 ;;
    --container-url) container_url="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --manifest) manifest="$2"; shift 2 ;;
    --page-size) take="$2"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "export-customvision: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for required in endpoint project container_url; do
  if [ -z "${!required}" ]; then echo "export-customvision: --${required//_/-} is required (see --help)" >&2; exit 2; fi
done
if [ -z "${CUSTOMVISION_TRAINING_KEY:-}" ]; then echo "export-customvision: set CUSTOMVISION_TRAINING_KEY to the project's training key" >&2; exit 2; fi
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "export-customvision: $tool is required" >&2; exit 2; }
done
case "$container_url" in
  *\?*) container="${container_url%%\?*}"; sas="${container_url#*\?}" ;;
  *) echo "export-customvision: --container-url needs a SAS token (?sv=...) with create and write permission" >&2; exit 2 ;;
esac
container="${container%/}"
if [ -n "$prefix" ] && [ "${prefix: -1}" != / ]; then prefix="$prefix/"; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
api() {
  curl -fsS --retry 3 -H "Training-Key: $CUSTOMVISION_TRAINING_KEY" "$endpoint/customvision/v3.3/training/projects/$project$1"
}
csv_field() {
  case "$1" in
    *[,\"]*) printf '"%s"' "${1//\"/\"\"}" ;;
    *) printf '%s' "$1" ;;
  esac
}

project_json="$(api "")"
classification="$(jq -r '.settings.classificationType // "classification"' <<<"$project_json")"
echo "Custom Vision project $(jq -r '.name' <<<"$project_json") ($classification)"
multilabel=false
[ "$classification" = Multilabel ] && multilabel=true
# The project's tags with their ids, beside the manifest (customvision.csv -> customvision.tags.json): training from the
# manifest records them in the model, and the Custom Vision-compatible API then answers with the project's own tag ids.
tags_file="$(dirname "$manifest")/$(basename "$manifest" | sed 's/\.[^.]*$//').tags.json"
api "/tags" | jq '[.[] | {id, name}]' > "$tags_file"
jq -r '.[] | "  tag \(.name) (\(.id))"' "$tags_file"

if $multilabel; then printf 'image,labels\n' > "$manifest"; else printf 'image,label\n' > "$manifest"; fi
# A multi-label image's tags, joined by ';', without the project's Negative tag (such an image carries no label).
negative_ids="$(jq -c '[.[] | select(.type == "Negative") | .id]' <(api "/tags"))"
skip=0 exported=0 left_out=0
while :; do
  api "/images/tagged?take=$take&skip=$skip" > "$work/page.json"
  count="$(jq 'length' "$work/page.json")"
  [ "$count" -eq 0 ] && break
  while IFS=$'\t' read -r id uri tags label labels; do
    if $multilabel; then
      label="$labels"
    elif [ "$tags" -ne 1 ]; then
      echo "left out image $id: it has $tags tags; the trainer takes one label per image" >&2
      left_out=$((left_out + 1))
      continue
    fi
    blob="$prefix$id"
    curl -fsS --retry 3 -o "$work/image" "$uri"
    curl -fsS --retry 3 -X PUT -H "x-ms-blob-type: BlockBlob" -H "x-ms-version: 2021-08-06" \
      --data-binary "@$work/image" "$container/$blob?$sas" -o /dev/null
    printf '%s,%s\n' "$(csv_field "$blob")" "$(csv_field "$label")" >> "$manifest"
    exported=$((exported + 1))
  done < <(jq -r --argjson negative "$negative_ids" '.[] | [.id, (.originalImageUri // .resizedImageUri), (.tags | length), (.tags[0].tagName // ""),
      ([.tags[] | select(.tagId as $t | $negative | index($t) | not) | .tagName] | join(";"))] | @tsv' "$work/page.json")
  skip=$((skip + count))
  [ "$count" -lt "$take" ] && break
done

echo "Exported $exported image(s) to $container/$prefix ($left_out left out); manifest: $manifest; tag ids: $tags_file"
echo "Train with: trainjob train --data $manifest$($multilabel && echo " --multilabel") --output <folder>   (with Classifier__TrainingContainer naming this container)"
