#!/usr/bin/env bash
# Vendor the JavaScript the book's pages load, so they work with no CDN reachable:
#   static/widgets/require.js    requirejs@2.3.8            (require.js)
#   static/widgets/embed-amd.js  @jupyter-widgets/html-manager@1.0.15 (dist/embed-amd.js)
#   static/mathjax/              mathjax@3.2.2              (es5/tex-mml-chtml.js + input output adaptors a11y ui sre)
#   extra/_exec/@jupyter-widgets/  the widget CSS's Font Awesome files: embed-amd.js asks for them
#                                relative to the page, and every page with widgets is under _exec/;
#                                the font-face rules ask first under html-manager/dist/, so the
#                                files are there too (no 404 in the console)
# into book/_vendor/ (gitignored; book/_config.yml points html_static_path (static/),
# html_extra_path (extra/), nb_ipywidgets_js and mathjax_path there). Fetched with `npm pack` from the npm registry into a temporary folder.
# Idempotent: does nothing when book/_vendor/.vendored already names these versions.
# Usage: scripts/vendor_js.sh [DEST]   (default DEST: book/_vendor)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-book/_vendor}"
PKGS="@jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8 mathjax@3.2.2"
MARK="$PKGS layout=static+extra+dist-fonts"
if [ -f "$DEST/.vendored" ] && [ "$(cat "$DEST/.vendored")" = "$MARK" ]; then
  echo "vendor_js: $DEST is up to date ($PKGS)"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "vendor_js: npm not found. Install Node.js/npm (e.g. apt-get install -y npm), or build the book" >&2
  echo "vendor_js: without vendored JS (its pages then load MathJax and the widget manager from CDNs)." >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent $PKGS >/dev/null )
for f in "$tmp"/*.tgz; do
  d="$tmp/x/$(basename "$f" .tgz)"
  mkdir -p "$d"
  tar -xzf "$f" -C "$d"
done
hm="$tmp/x/jupyter-widgets-html-manager-1.0.15/package/dist"
rq="$tmp/x/requirejs-2.3.8/package"
mj="$tmp/x/mathjax-3.2.2/package/es5"
out="$tmp/out"
fonts="$out/extra/_exec/@jupyter-widgets"
mkdir -p "$out/static/widgets" "$out/static/mathjax" "$fonts" "$fonts/html-manager/dist"
cp "$rq/require.js" "$out/static/widgets/require.js"
cp "$hm/embed-amd.js" "$out/static/widgets/embed-amd.js"
# the widget CSS refers to Font Awesome files by their hashed names, relative to the page
find "$hm" -maxdepth 1 -type f \( -name '*.woff' -o -name '*.woff2' -o -name '*.ttf' -o -name '*.eot' \
  -o -name '*.svg' \) -exec cp {} "$fonts/" \; -exec cp {} "$fonts/html-manager/dist/" \;
cp "$mj/tex-mml-chtml.js" "$out/static/mathjax/"
for sub in input output adaptors a11y ui sre; do cp -r "$mj/$sub" "$out/static/mathjax/"; done
cp "$tmp/x/mathjax-3.2.2/package/LICENSE" "$out/static/mathjax/LICENSE"
echo "$MARK" > "$out/.vendored"
rm -rf "$DEST.tmp"
mkdir -p "$(dirname "$DEST")"
mv "$out" "$DEST.tmp"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "vendor_js: wrote $DEST ($(du -sh "$DEST" | cut -f1)): $PKGS"
