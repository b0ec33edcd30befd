__version__ = "0.1.0"

# `Study.browse` and `Study.export_html` are added to `Study` by these two modules (fastcore's `@patch`), so that
# `medinterp.study` does not import them; importing them with the package gives every `Study` both methods, whichever
# medinterp module was imported first.
from . import browser as _browser, report as _report  # noqa: E402,F401
