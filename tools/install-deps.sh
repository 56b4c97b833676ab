#!/bin/sh
# install-deps.sh build|test: install the Debian packages xmppd needs to build
# or to run its tests, only when something is missing. Called by make run and
# make check; safe to run again.
set -e
what=${1:-build}
need=""
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
case "$what" in
build) pkgs="gcc make libc6-dev libmbedtls-dev" ;;
test) pkgs="python3 python3-pytest python3-pytest-xdist python3-slixmpp go-sendxmpp xmppc sendxmpp biboumi tsung unicode-data
	python3-precis-i18n"
	# XEP-0227 round trips (test_72_pie.py): Prosody, its migrator, ejabberd
	pkgs="$pkgs prosody lua5.4 ejabberd openssl"
	# kill -9 half-way through an import (test_72_pie.py): strace fault injection
	pkgs="$pkgs strace"
	# XMPP over WebSocket (test_91_websocket.py): an RFC 6455 client
	pkgs="$pkgs python3-websockets"
	# XEP-0363 upload (test_94_upload.py): slixmpp's plugin PUTs with aiohttp
	pkgs="$pkgs python3-aiohttp"
	# Real-browser tests (test_95_browser.py): headless Chromium driven by
	# selenium; Converse.js comes from npm at test time
	pkgs="$pkgs chromium chromium-driver python3-selenium npm" ;;
*) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
# mbedTLS 3.6 build (tools/mbedtls36.sh): apt-get source needs dpkg-source.
[ "$what" = test ] && pkgs="$pkgs dpkg-dev"
for p in $pkgs; do
	# npm: a Node.js that bundles its own (NodeSource's) conflicts with
	# Debian's npm package; either will do
	[ "$p" = npm ] && command -v npm >/dev/null 2>&1 && continue
	have_pkg "$p" || need="$need $p"
done
[ -z "$need" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
	echo "missing packages:$need (no apt-get here: install them by hand)" >&2
	exit 1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing:$need"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need
