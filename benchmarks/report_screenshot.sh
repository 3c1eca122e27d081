#!/usr/bin/env bash
# A headless-browser screenshot of a run's HTML report, to look at it (or attach it) without a desktop.
#
#   bash benchmarks/report_screenshot.sh WORK_DIR [OUT.png]      # default OUT: WORK_DIR/report.png
#   HEIGHT=6000 bash benchmarks/report_screenshot.sh work/demo    # a taller page (pixels; width is 1280)
#
# Needs Debian's chromium (apt-get update && apt-get install -y chromium). The report itself is
# made by `python -m pipelines.report --work WORK_DIR` (make report).
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 WORK_DIR [OUT.png]" >&2; exit 2
fi
REPORT="$1/report.html"
OUT="${2:-$1/report.png}"
if [ ! -f "$REPORT" ]; then
  echo "no $REPORT: make it first with python -m pipelines.report --work $1" >&2; exit 2
fi
if ! command -v chromium >/dev/null; then
  echo "chromium is not installed; install it with: apt-get update && apt-get install -y chromium" >&2; exit 2
fi
ABS_REPORT="$(cd "$(dirname "$REPORT")" && pwd)/$(basename "$REPORT")"
ABS_OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
# chromium logs GPU/dbus noise to stderr in containers: keep it out of the way unless it fails.
if ! chromium --headless --no-sandbox --hide-scrollbars --window-size="1280,${HEIGHT:-4000}" \
    --screenshot="$ABS_OUT" "file://$ABS_REPORT" 2>"$ABS_OUT.log" >/dev/null; then
  cat "$ABS_OUT.log" >&2; exit 1
fi
rm -f "$ABS_OUT.log"
echo "screenshot: $OUT"
