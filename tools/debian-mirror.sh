#!/bin/sh
# Print the Debian archive this machine's apt already uses (deb822 or
# one-line sources), e.g. http://deb.debian.org/debian, so that tools which
# fetch packages through a private apt configuration (cross.sh, mbedtls36.sh)
# go where apt goes anyway. Prints nothing when there is none.
sed -n -e 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/*$/\1/p' \
	-e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\(http[^[:space:]]*\/debian\)\/*[[:space:]].*/\2/p' \
	/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
	2>/dev/null | head -n 1
