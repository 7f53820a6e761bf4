"""A Sphinx extension of the course's book: one copy of each script per page.

With Sphinx 7.4, the inline configuration scripts of sphinx-thebe and sphinx-togglebutton
reach every page twice; thebe's declares `const THEBE_JS_URL`, so the second copy is a
console error ("Identifier 'THEBE_JS_URL' has already been declared"): once as given to
`app.add_js_file(None, body=...)` and once with the file name `''` the builder puts in its
place. This drops the repeats, keeping the first of each (same file or no file, same
priority, same attributes: an inline script's attributes hold its body).
"""


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", script) or "", getattr(script, "priority", None),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
