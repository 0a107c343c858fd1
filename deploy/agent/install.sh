#!/bin/sh
# Installs the fedsynth site agent as a systemd service, from this checkout, in one command:
#   sudo deploy/agent/install.sh --site-name st-mary --data-dir /srv/synthrad \
#        --coordinator https://fl.example.org --token fse_...
# What it does: checks Node.js 20.19+, creates the system user "fedsynth", installs the agent
# under /opt/fedsynth, keeps its state (identity key, audit log) in /var/lib/fedsynth-agent,
# runs `init`, `enroll` (when --token is given) and `doctor`, then enables and starts the service.
# The agent needs only outbound HTTPS to the coordinator; nothing listens on this machine.
set -eu

SITE=""; DATA=""; COORD=""; TOKEN=""; WINDOW="always"
PREFIX=/opt/fedsynth; STATE=/var/lib/fedsynth-agent
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --site-name) SITE=$2; shift 2 ;;
    --data-dir) DATA=$2; shift 2 ;;
    --coordinator) COORD=$2; shift 2 ;;
    --token) TOKEN=$2; shift 2 ;;
    --training-window) WINDOW=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown option $1" >&2; usage ;;
  esac
done
[ -n "$SITE" ] && [ -n "$DATA" ] && [ -n "$COORD" ] || { echo "install.sh: --site-name, --data-dir and --coordinator are required" >&2; usage; }
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
command -v node >/dev/null || { echo "install.sh: Node.js 20.19 or newer is required (https://nodejs.org)" >&2; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || { echo "install.sh: Node.js $(node -v) is too old; 20.19 or newer is required" >&2; exit 1; }
[ -d "$DATA" ] || { echo "install.sh: data directory $DATA does not exist" >&2; exit 1; }

SRC=$(cd "$(dirname "$0")/../.." && pwd)
id fedsynth >/dev/null 2>&1 || useradd --system --home-dir "$STATE" --shell /usr/sbin/nologin fedsynth
mkdir -p "$PREFIX" "$STATE"
echo "installing the agent into $PREFIX ..."
tar -C "$SRC" --exclude=node_modules --exclude=dist --exclude=.git --exclude=demo-output -cf - . | tar -C "$PREFIX" -xf -
(cd "$PREFIX" && npm ci --ignore-scripts --no-audit --no-fund && npx tsc -b && npm prune --omit=dev --ignore-scripts --no-audit --no-fund)
chown -R fedsynth:fedsynth "$STATE"
chmod 700 "$STATE"

AGENT="node $PREFIX/apps/site-agent/bin/fedsynth-agent.js"
as_agent() { runuser -u fedsynth -- env FEDSYNTH_AGENT_HOME="$STATE" $AGENT "$@"; }
as_agent init --site-name "$SITE" --data-dir "$DATA" --coordinator-url "$COORD" --training-window "$WINDOW" --force
[ -n "$TOKEN" ] && as_agent enroll --token "$TOKEN"
as_agent doctor || echo "install.sh: doctor reported problems (above); fix them, then: systemctl restart fedsynth-agent" >&2

install -m 0644 "$PREFIX/deploy/agent/fedsynth-agent.service" /etc/systemd/system/fedsynth-agent.service
systemctl daemon-reload
systemctl enable --now fedsynth-agent
echo "done: systemctl status fedsynth-agent; journalctl -u fedsynth-agent -f; $AGENT status (as fedsynth)"
