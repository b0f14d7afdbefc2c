"""Sphinx fixes for the book's pages, loaded through `local_extensions` in _config.yml.

- Jupyter Book 1 registers sphinx-thebe's and sphinx-togglebutton's inline scripts more than once,
  so every page declared `const THEBE_JS_URL` twice and the browser logged a SyntaxError. Each
  page keeps the first copy of every script.
- The ipywidgets HTML manager (embed-amd.js 1.0.x) typesets widget labels through the MathJax 2
  call `MathJax.Hub.Queue`; the book loads MathJax 3, which has no `Hub`, so each widget with a
  label threw a TypeError. A two-line shim forwards that call to MathJax 3's `typesetPromise`.
"""

MATHJAX2_SHIM = (
    "(function () {"
    " var hub = {Queue: function (job) { var m = window.MathJax;"
    " if (m && m.typesetPromise && job && job[2]) { m.typesetPromise([job[2]]).catch(function () {}); } }};"
    " var cfg = window.MathJax = window.MathJax || {}; cfg.Hub = cfg.Hub || hub;"
    # MathJax 3 replaces window.MathJax when it loads: put the shim back once it is ready
    " var startup = cfg.startup = cfg.startup || {}; var ready = startup.ready;"
    " startup.ready = function () { if (ready) { ready(); } else { window.MathJax.startup.defaultReady(); }"
    " window.MathJax.Hub = window.MathJax.Hub || hub; };"
    "})();"
)


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for s in scripts:
        # an inline script is registered once with filename None and once with "": the same script
        key = (str(getattr(s, "filename", s) or ""), tuple(sorted((getattr(s, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(s)
    # in place: later handlers (MathJax on pages with math) append to this same list
    scripts[:] = kept


def setup(app):
    # after the MathJax 3 configuration script, which replaces window.MathJax (priority 1000 runs last)
    app.add_js_file(None, body=MATHJAX2_SHIM, priority=1000)
    # early: Sphinx stops calling html-page-context handlers at the first one that returns a value
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
