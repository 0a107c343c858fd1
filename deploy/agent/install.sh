#!/bin/sh
# Installs the fedsynth site agent from its npm package and runs it as a systemd service:
#   sudo ./install.sh --package ./fedsynth-site-agent-<version>.tgz --site-name st-mary \
#        --data-dir /srv/synthrad --coordinator https://fl.example.org --token fse_...
# What it does: checks Node.js 20.19+ and npm, creates the system user "fedsynth", installs the
# package with `npm install -g --prefix /opt/fedsynth`, keeps the agent's state (identity key, audit
# log) in /var/lib/fedsynth-agent, runs `init`, `enroll` (when --token is given) and `doctor`, then
# enables and starts fedsynth-agent.service. The agent needs only outbound HTTPS to the coordinator.
#   --package FILE|SPEC  the agent package: a .tgz, or a registry spec (fedsynth-site-agent@1.2.0);
#                        default: the newest fedsynth-site-agent-*.tgz next to this script, or in a
#                        fedsynth checkout one packed from it (npm run pack)
#   --prefix DIR         npm prefix to install into (default /opt/fedsynth)
#   --state-dir DIR      the agent's state (default /var/lib/fedsynth-agent)
#   --training-window HH:MM-HH:MM   accept rounds only in this daily window (default always)
#   --no-service         install and set up for the current user, without the service user or systemd
# Upgrade an installed agent: sudo ./install.sh --package NEWER.tgz (its settings and key are kept).
set -eu

SITE=""; DATA=""; COORD=""; TOKEN=""; WINDOW="always"; PKG=""; SERVICE=1
PREFIX=/opt/fedsynth; STATE=/var/lib/fedsynth-agent
HERE=$(cd "$(dirname "$0")" && pwd)
usage() { awk 'NR > 1 && /^set -eu/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "install.sh: $*" >&2; exit 1; }
need_value() { [ $# -ge 2 ] || { echo "install.sh: $1 needs a value" >&2; usage; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --site-name) need_value "$@"; SITE=$2; shift 2 ;;
    --data-dir) need_value "$@"; DATA=$2; shift 2 ;;
    --coordinator) need_value "$@"; COORD=$2; shift 2 ;;
    --token) need_value "$@"; TOKEN=$2; shift 2 ;;
    --training-window) need_value "$@"; WINDOW=$2; shift 2 ;;
    --package) need_value "$@"; PKG=$2; shift 2 ;;
    --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
    --state-dir) need_value "$@"; STATE=$2; shift 2 ;;
    --no-service) SERVICE=0; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown option $1" >&2; usage ;;
  esac
done

# An agent set up before, and no new settings: upgrade its package, keep its state.
UPGRADE=0
if [ -z "$SITE$DATA$COORD$TOKEN" ] && [ -f "$STATE/agent.json" ]; then
  UPGRADE=1
else
  if [ -z "$SITE" ] || [ -z "$DATA" ] || [ -z "$COORD" ]; then
    echo "install.sh: --site-name, --data-dir and --coordinator are required (to upgrade an installed agent, give only --package)" >&2
    usage
  fi
  [ -d "$DATA" ] || die "data directory $DATA does not exist"
fi
[ "$SERVICE" -eq 0 ] || [ "$(id -u)" -eq 0 ] || die "run as root (sudo), or pass --no-service"
command -v node >/dev/null || die "Node.js 20.19 or newer is required (https://nodejs.org)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || die "Node.js $(node -v) is too old; 20.19 or newer is required"
command -v npm >/dev/null || die "npm is required (it comes with Node.js)"

# The package: given, next to this script, or packed from the checkout this script is in.
# shellcheck disable=SC2012 # our own file names, sorted by version
newest_package() { ls "$1"/fedsynth-site-agent-*.tgz 2>/dev/null | sort -V | tail -n 1; }
[ -n "$PKG" ] || PKG=$(newest_package "$HERE")
if [ -z "$PKG" ]; then
  ROOT=$(cd "$HERE/../.." && pwd)
  if [ ! -f "$ROOT/scripts/pack.mjs" ] || [ ! -d "$ROOT/apps/site-agent" ]; then
    die "no agent package: pass --package ./fedsynth-site-agent-<version>.tgz (npm run pack in a fedsynth checkout makes one), or put it next to this script"
  fi
  [ -d "$ROOT/node_modules" ] || die "the fedsynth checkout at $ROOT has no node_modules: run npm ci there first, or pass --package"
  echo "packing the agent from the fedsynth checkout at $ROOT ..."
  (cd "$ROOT" && node scripts/pack.mjs --only site-agent) || die "packing the agent failed (above)"
  PKG=$(newest_package "$ROOT/dist-packages")
fi
case "$PKG" in
  *.tgz) [ -f "$PKG" ] || die "package $PKG does not exist"
         PKG="$(cd "$(dirname "$PKG")" && pwd)/$(basename "$PKG")" ;;
esac

mkdir -p "$PREFIX" "$STATE"
echo "installing $PKG into $PREFIX ..."
npm install -g --prefix "$PREFIX" --no-audit --no-fund "$PKG" || die "npm could not install $PKG (above)"
AGENT="$PREFIX/bin/fedsynth-agent"
PACKAGE_DIR="$(npm root -g --prefix "$PREFIX")/fedsynth-site-agent"
if [ ! -x "$AGENT" ] || [ ! -d "$PACKAGE_DIR" ]; then
  die "$PKG did not install fedsynth-agent into $PREFIX: is it a fedsynth-site-agent package?"
fi
echo "installed $("$AGENT" --version)"

if [ "$SERVICE" -eq 1 ]; then
  id fedsynth >/dev/null 2>&1 || useradd --system --home-dir "$STATE" --shell /usr/sbin/nologin fedsynth
  chown -R fedsynth:fedsynth "$STATE"
  chmod 700 "$STATE"
  as_agent() { runuser -u fedsynth -- env FEDSYNTH_AGENT_HOME="$STATE" "$AGENT" "$@"; }
else
  as_agent() { env FEDSYNTH_AGENT_HOME="$STATE" "$AGENT" "$@"; }
fi
if [ "$UPGRADE" -eq 0 ]; then
  as_agent init --site-name "$SITE" --data-dir "$DATA" --coordinator-url "$COORD" --training-window "$WINDOW" --force
  [ -z "$TOKEN" ] || as_agent enroll --token "$TOKEN"
fi
as_agent doctor || echo "install.sh: doctor reported problems (above); fix them, then restart the agent" >&2

if [ "$SERVICE" -eq 0 ]; then
  echo "done: FEDSYNTH_AGENT_HOME=$STATE $AGENT run"
  exit 0
fi
# The unit runs the package at /opt/fedsynth with its state in /var/lib/fedsynth-agent: other
# places are written into the copy installed here.
sed -e "s#/opt/fedsynth/lib/node_modules/fedsynth-site-agent#$PACKAGE_DIR#g" \
    -e "s#/var/lib/fedsynth-agent#$STATE#g" \
    "$PACKAGE_DIR/deploy/fedsynth-agent.service" > /etc/systemd/system/fedsynth-agent.service
chmod 0644 /etc/systemd/system/fedsynth-agent.service
systemctl daemon-reload
if [ "$UPGRADE" -eq 1 ]; then
  systemctl restart fedsynth-agent
else
  systemctl enable --now fedsynth-agent
fi
echo "done: systemctl status fedsynth-agent; journalctl -u fedsynth-agent -f; sudo -u fedsynth FEDSYNTH_AGENT_HOME=$STATE $AGENT status"
