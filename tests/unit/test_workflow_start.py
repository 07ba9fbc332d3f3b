import sys

from rewardflow.workflow_start import PARAM_SERIALIZER_MODULE, preload_in_background


def test_the_module_is_imported_by_a_background_thread(tmp_path, monkeypatch):
    (tmp_path / "rf_preload_probe.py").write_text(
        "import threading\nIMPORTED_BY = threading.current_thread().name\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rf_preload_probe", raising=False)
    thread = preload_in_background("rf_preload_probe")
    assert thread is not None and thread.daemon
    thread.join(timeout=30)
    assert thread.name == sys.modules["rf_preload_probe"].IMPORTED_BY


def test_a_module_that_is_not_installed_starts_nothing():
    assert preload_in_background("rf_no_such_module_anywhere") is None


def test_a_failing_import_is_left_to_the_next_importer(tmp_path, monkeypatch):
    (tmp_path / "rf_preload_broken.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    thread = preload_in_background("rf_preload_broken")
    assert thread is not None
    thread.join(timeout=30)
    assert "rf_preload_broken" not in sys.modules


def test_the_preloaded_module_is_the_one_snakemake_imports_for_its_metadata():
    # Snakemake's metadata record serializes params through pandas when it is installed; if
    # a Snakemake release drops that, this preload becomes dead weight and should go.
    import inspect

    from snakemake.persistence import PersistenceBase

    source = inspect.getsource(PersistenceBase)
    assert f"import {PARAM_SERIALIZER_MODULE}" in source
