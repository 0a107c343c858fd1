#!/bin/sh
# Entrypoint of an agent container in compose.yaml: init once, enroll with the token the bootstrap
# job wrote for this site, then run the daemon.
set -eu
AGENT=fedsynth-agent
[ -f /state/agent.json ] || $AGENT init --site-name "$SITE" --data-dir "$DATA" --coordinator-url "$FEDSYNTH_URL"
if [ ! -f /state/enrollment.json ]; then
  while [ ! -f "/shared/$SITE.token" ]; do echo "waiting for an enrollment token for $SITE"; sleep 2; done
  $AGENT enroll --token "$(cat "/shared/$SITE.token")"
fi
exec $AGENT run --log-format json
