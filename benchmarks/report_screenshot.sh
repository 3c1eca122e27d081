#!/usr/bin/env bash
# A headless-browser screenshot of a run's HTML report, to look at it (or attach it) without a desktop.
#
#   bash benchmarks/report_screenshot.sh WORK_DIR [OUT.png]      # default OUT: WORK_DIR/report.png
#   HEIGHT=6000 bash benchmarks/report_screenshot.sh work/demo    # a fixed height instead (pixels; width is 1280)
#
# The height is the page's own: a first headless pass loads a copy of the report with a one-line script
# that writes document.documentElement.scrollHeight into the DOM, printed by --dump-dom; the screenshot
# then uses that height, so no section is cut off however long the report grows.
#
# Needs Debian's chromium (apt-get update && apt-get install -y chromium). The report itself is
# made by `python -m run.report --work WORK_DIR` (make report).
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 WORK_DIR [OUT.png]" >&2; exit 2
fi
REPORT="$1/report.html"
OUT="${2:-$1/report.png}"
if [ ! -f "$REPORT" ]; then
  echo "no $REPORT: make it first with python -m run.report --work $1" >&2; exit 2
fi
if ! command -v chromium >/dev/null; then
  echo "chromium is not installed; install it with: apt-get update && apt-get install -y chromium" >&2; exit 2
fi
ABS_REPORT="$(cd "$(dirname "$REPORT")" && pwd)/$(basename "$REPORT")"
ABS_OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
WIDTH=1280
# chromium logs GPU/dbus noise to stderr in containers: keep it out of the way unless it fails.
if [ -z "${HEIGHT:-}" ]; then
  PROBE="$(mktemp "$(dirname "$ABS_REPORT")/.report-height-XXXXXX.html")"
  trap 'rm -f "$PROBE"' EXIT
  { cat "$ABS_REPORT"
    echo '<script>document.documentElement.setAttribute("data-page-height",'
    echo '  Math.ceil(document.documentElement.scrollHeight))</script>'; } > "$PROBE"
  HEIGHT="$(chromium --headless --no-sandbox --hide-scrollbars --window-size="$WIDTH,1000" --dump-dom \
    "file://$PROBE" 2>/dev/null | grep -o 'data-page-height="[0-9]*"' | head -n 1 | grep -o '[0-9][0-9]*' || true)"
  if [ -z "$HEIGHT" ]; then
    echo "could not measure the page height; give one: HEIGHT=8000 $0 $*" >&2; exit 1
  fi
fi
if ! chromium --headless --no-sandbox --hide-scrollbars --window-size="$WIDTH,$HEIGHT" \
    --screenshot="$ABS_OUT" "file://$ABS_REPORT" 2>"$ABS_OUT.log" >/dev/null; then
  cat "$ABS_OUT.log" >&2; exit 1
fi
rm -f "$ABS_OUT.log"
echo "screenshot: $OUT (${WIDTH}x${HEIGHT} px)"
