#!/usr/bin/env bash
# End-to-end check of the figure/report step on one rsa_gpu output folder.
#
#   tests/report_check.sh OUT_DIR        (OUT_DIR written by `rsa_gpu --out OUT_DIR`)
#
# (a) runs tools/make_figures.py on OUT_DIR;
# (b) checks that every expected figure exists under OUT_DIR/figures/ and is a real PNG
#     (signature bytes, IHDR chunk, width and height >= 100 px, file >= 2 KiB);
# (c) checks that OUT_DIR/report.html is self-contained (no http:, https: or protocol-relative
#     references), loads it in headless Chromium and reads the DOM after the load event: every <img>
#     must carry data-loaded="yes" (set by the page's own onload handler only when naturalWidth > 0),
#     and <body data-images-loaded> must equal <body data-images>.
#
# Exit status: 0 pass, 1 fail, 77 skipped (no matplotlib/numpy/sklearn for the Python, or no Chromium);
# 77 is CTest's conventional SKIP_RETURN_CODE.
# Environment: PYTHON (default /usr/bin/python3, Debian's, which has python3-matplotlib/-sklearn),
#              CHROMIUM (default: the first of chromium, chromium-browser, google-chrome on PATH),
#              REPORT_CHECK_SCREENSHOT=path.png to also save a screenshot of the page.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
script="$root/tools/make_figures.py"
PYTHON="${PYTHON:-/usr/bin/python3}"

fail() { echo "report_check: FAIL: $*" >&2; exit 1; }
skip() { echo "report_check: SKIPPED: $*" >&2; exit 77; }

[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 1; }
out="$(cd "$1" 2>/dev/null && pwd)" || fail "$1 is not a directory"
[ -f "$out/results.json" ] || fail "$out/results.json not found (not an rsa_gpu output folder)"

# ---- prerequisites -----------------------------------------------------------------------------
[ -x "$PYTHON" ] || command -v "$PYTHON" >/dev/null 2>&1 || skip "no Python interpreter at $PYTHON"
if ! "$PYTHON" -c 'import matplotlib, numpy, sklearn' 2>/dev/null; then
    skip "$PYTHON lacks matplotlib/numpy/sklearn (apt-get install -y python3-matplotlib python3-numpy python3-sklearn)"
fi
chromium="${CHROMIUM:-}"
if [ -z "$chromium" ]; then
    for c in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$c" >/dev/null 2>&1; then chromium="$(command -v "$c")"; break; fi
    done
fi
[ -n "$chromium" ] && command -v "$chromium" >/dev/null 2>&1 || skip "no headless Chromium (apt-get install -y chromium)"

work="$(mktemp -d "${TMPDIR:-/tmp}/report_check.XXXXXX")" || fail "mktemp failed"
trap 'rm -rf "$work"' EXIT

# ---- (a) make the figures and the report ------------------------------------------------------
start=$(date +%s)
if ! timeout 600 "$PYTHON" "$script" "$out" >"$work/make.log" 2>&1; then
    cat "$work/make.log" >&2
    fail "tools/make_figures.py exited non-zero"
fi
cat "$work/make.log"
echo "report_check: make_figures.py took $(( $(date +%s) - start )) s"

# ---- (b) the PNGs ------------------------------------------------------------------------------
expected="stimuli rdms correlations rdm_rows tuning embedding"
if "$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1])).get("cnn") or {}; sys.exit(0 if c.get("step_losses") else 1)' \
       "$out/results.json"; then
    expected="$expected training_loss"
fi
be32() { od -An -tu1 -j "$2" -N4 "$1" | awk '{print $1*16777216 + $2*65536 + $3*256 + $4}'; }
n_png=0
for name in $expected; do
    f="$out/figures/$name.png"
    [ -f "$f" ] || fail "$f was not written"
    sig="$(od -An -tx1 -N8 "$f" | tr -d ' \n')"
    [ "$sig" = "89504e470d0a1a0a" ] || fail "$f is not a PNG (first bytes $sig)"
    ihdr="$(od -An -c -j12 -N4 "$f" | tr -d ' \n')"
    [ "$ihdr" = "IHDR" ] || fail "$f has no IHDR chunk"
    size=$(wc -c <"$f")
    w=$(be32 "$f" 16); h=$(be32 "$f" 20)
    [ "$size" -ge 2048 ] || fail "$f is only $size bytes"
    [ "$w" -ge 100 ] && [ "$h" -ge 100 ] || fail "$f is only ${w} x ${h} px"
    echo "report_check: ok $name.png (${w} x ${h} px, $size bytes)"
    n_png=$((n_png + 1))
done

# ---- (c) the HTML report -------------------------------------------------------------------------
html="$out/report.html"
[ -s "$html" ] || fail "$html was not written"
n_img=$(grep -o '<img ' "$html" | wc -l)
n_data=$(grep -o '<img [^>]*src="data:image/png;base64,' "$html" | wc -l)
[ "$n_img" -ge "$n_png" ] || fail "report.html has $n_img <img> elements, expected at least $n_png"
[ "$n_data" -eq "$n_img" ] || fail "report.html: only $n_data of $n_img images are embedded data: URIs"
if grep -Eiq '(src|href)[[:space:]]*=[[:space:]]*"(https?:|//)|url\([[:space:]]*["'\'']?(https?:|//)|@import' "$html"; then
    fail "report.html references an external resource"
fi

profile="$work/profile"
mkdir -p "$profile"
flags=(--headless --no-sandbox --disable-gpu --disable-extensions --no-first-run
       --user-data-dir="$profile" --virtual-time-budget=10000)
if ! timeout 180 "$chromium" "${flags[@]}" --dump-dom "file://$html" >"$work/dom.html" 2>"$work/chromium.log"; then
    tail -20 "$work/chromium.log" >&2
    fail "headless Chromium could not load $html"
fi
[ -s "$work/dom.html" ] || { tail -20 "$work/chromium.log" >&2; fail "headless Chromium dumped an empty DOM"; }
yes=$(grep -o 'data-loaded="yes"' "$work/dom.html" | wc -l)
no=$(grep -o 'data-loaded="no"' "$work/dom.html" | wc -l)
body="$(grep -o '<body[^>]*>' "$work/dom.html" | head -1)"
imgs=$(sed -n 's/.*data-images="\([0-9]*\)".*/\1/p' <<<"$body")
loaded=$(sed -n 's/.*data-images-loaded="\([0-9]*\)".*/\1/p' <<<"$body")
echo "report_check: Chromium: $yes image(s) loaded, $no failed; body reports ${loaded:-?} of ${imgs:-?}"
[ "$no" -eq 0 ] || fail "$no image(s) in report.html failed to decode in Chromium"
[ "$yes" -eq "$n_img" ] || fail "only $yes of $n_img images were marked loaded in Chromium"
[ -n "$imgs" ] && [ "$imgs" = "$n_img" ] && [ "$loaded" = "$imgs" ] \
    || fail "page load check: body says ${loaded:-?} of ${imgs:-?} images loaded, report has $n_img"

if [ -n "${REPORT_CHECK_SCREENSHOT:-}" ]; then
    timeout 180 "$chromium" "${flags[@]}" --window-size=1280,4000 --hide-scrollbars \
        --screenshot="$REPORT_CHECK_SCREENSHOT" "file://$html" >/dev/null 2>>"$work/chromium.log" \
        && echo "report_check: screenshot in $REPORT_CHECK_SCREENSHOT"
fi

echo "report_check: PASS ($n_png figures, report.html $(( $(wc -c <"$html") / 1024 )) KiB, all images render)"
exit 0
