#!/bin/sh
# check-unicode-table.sh: precis_table.c is generated (tools/gen-unicode.py)
# and committed, so builds need no Unicode data. When the data Debian ships is
# here (package unicode-data), regenerate the table and insist it is the one
# committed: an edit to the generator or a new Unicode version must come with
# a regenerated precis_table.c (and tests/unit/precis_table_ref.h, its runs
# unpacked for test_precis_table). Prints one "N passed, N failed" line.
ucd=${UCD:-/usr/share/unicode}
cd "$(dirname "$0")/../.." || exit 1
if [ ! -r "$ucd/UnicodeData.txt" ]; then
	echo "check-unicode-table: $ucd has no Unicode data (unicode-data), skipped"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
if ${PYTHON:-python3} tools/gen-unicode.py "$ucd" >"$tmp" 2>/dev/null && cmp -s "$tmp" precis_table.c &&
	${PYTHON:-python3} tools/gen-unicode.py --flat "$ucd" >"$tmp" 2>/dev/null &&
	cmp -s "$tmp" tests/unit/precis_table_ref.h; then
	echo "check-unicode-table: 1 passed, 0 failed"
	exit 0
fi
echo "check-unicode-table: precis_table.c or tests/unit/precis_table_ref.h differs from tools/gen-unicode.py $ucd" >&2
echo "  (regenerate: python3 tools/gen-unicode.py > precis_table.c;" >&2
echo "   python3 tools/gen-unicode.py --flat > tests/unit/precis_table_ref.h)" >&2
echo "check-unicode-table: 0 passed, 1 failed"
exit 1
