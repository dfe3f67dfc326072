# Sourced by scripts/test.sh and scripts/demo.sh: starts a private Azurite (blob, queue, table) on
# 127.0.0.1 with free ports and a fresh temporary data folder, exports its connection string as
# CLASSIFIER_TEST_STORAGE, and stops it and removes the folder when the calling script exits.

# Installs the committed npm tools (Azurite, the emoji images) when missing or out of date.
node_tools_install() {
  local root="$1"
  if [ ! -f "$root/node_modules/.package-lock.json" ] || [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
    echo "==> Installing npm tools (npm ci: Azurite, the Custom Vision prediction client, the Twitter, Google and Facebook emoji images)"
    (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

azurite_start() {
  local root="$1"
  node_tools_install "$root"
  AZURITE_DATA="$(mktemp -d -t azurite-XXXXXX)"
  read -r BLOB_PORT QUEUE_PORT TABLE_PORT < <(node -e '
    const net = require("net");
    const take = () => new Promise(r => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });
    Promise.all([take(), take(), take()]).then(p => console.log(p.join(" ")));')
  "$root/node_modules/.bin/azurite" --silent --skipApiVersionCheck --loose \
    --location "$AZURITE_DATA" --debug "$AZURITE_DATA/debug.log" \
    --blobHost 127.0.0.1 --blobPort "$BLOB_PORT" \
    --queueHost 127.0.0.1 --queuePort "$QUEUE_PORT" \
    --tableHost 127.0.0.1 --tablePort "$TABLE_PORT" >"$AZURITE_DATA/azurite.out" 2>&1 &
  AZURITE_PID=$!
  trap azurite_stop EXIT
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$BLOB_PORT") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$QUEUE_PORT") 2>/dev/null; then
      break
    fi
    if ! kill -0 "$AZURITE_PID" 2>/dev/null; then
      echo "Azurite exited at start:" >&2; cat "$AZURITE_DATA/azurite.out" >&2; return 1
    fi
    sleep 0.2
  done
  local key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
  export CLASSIFIER_TEST_STORAGE="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=http://127.0.0.1:$BLOB_PORT/devstoreaccount1;QueueEndpoint=http://127.0.0.1:$QUEUE_PORT/devstoreaccount1;TableEndpoint=http://127.0.0.1:$TABLE_PORT/devstoreaccount1;"
  echo "==> Azurite on 127.0.0.1 (blob $BLOB_PORT, queue $QUEUE_PORT, table $TABLE_PORT), data in $AZURITE_DATA"
}

azurite_stop() {
  local status=$?
  if [ -n "${AZURITE_PID:-}" ] && kill -0 "$AZURITE_PID" 2>/dev/null; then
    kill "$AZURITE_PID" 2>/dev/null || true
    wait "$AZURITE_PID" 2>/dev/null || true
  fi
  [ -n "${AZURITE_DATA:-}" ] && rm -rf "$AZURITE_DATA"
  return $status
}
