"""The background import: only what is installed and not imported yet."""

import sys

from pipelines.run.warmup import import_in_background


def test_nothing_to_import_starts_no_thread():
    assert "json" in sys.modules
    assert import_in_background(["json", "no_such_module_anywhere.sub"]) is None


def test_an_installed_module_is_imported_in_a_thread():
    sys.modules.pop("colorsys", None)  # in every Python, imported by nothing here
    thread = import_in_background(["colorsys"])
    assert thread is not None and thread.daemon
    thread.join(timeout=30)
    assert "colorsys" in sys.modules
