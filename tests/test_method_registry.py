"""Methods register where they are defined (``@register_method``); lookups import lazily; a broken module is
reported by name when asked for, and never breaks the others."""

import os
import subprocess
import sys
import textwrap

import pytest

from bitrieve.methods import METHOD_MODULES, REGISTRY, MethodRegistry, get_method, register_method

# the names and class paths every stored config and checkpoint refer to (hand-copied from the registry as it was)
BUILTIN = {
    "cca_itq": "bitrieve.methods.cca_itq:CCAITQ",
    "agch": "bitrieve.methods.agch:AGCH",
    "ucmfh": "bitrieve.methods.ucmfh:UCMFH",
    "ucmfh_variant": "bitrieve.methods.ucmfh_variant:UCMFHVariant",
    "djsrh": "bitrieve.methods.djsrh:DJSRH",
    "jdsh": "bitrieve.methods.jdsh:JDSH",
    "dgcpn": "bitrieve.methods.dgcpn:DGCPN",
    "agch_fusion_balanced": "bitrieve.methods.agch_fusion_balanced:AGCHFusionBalanced",
    "greedyhash": "bitrieve.methods.greedyhash:GreedyHash",
    "dsh": "bitrieve.methods.dsh:DSH",
    "vsepp": "bitrieve.methods.vsepp:VSEPP",
}


def test_every_name_and_class_path_is_unchanged_and_in_table_order():
    for name, path in BUILTIN.items():
        cls = get_method(name)
        assert f"{cls.__module__}:{cls.__qualname__}" == path and cls.name == name
    assert [n for n in REGISTRY if n in BUILTIN] == list(BUILTIN)  # report tables list methods in this order
    assert tuple(BUILTIN) == METHOD_MODULES


def test_the_tests_method_is_registered_by_the_tests():
    assert get_method("toy_linear").__module__ == "toy_method"


def test_lookup_imports_only_the_named_module_and_listing_imports_none():
    code = textwrap.dedent("""
        import sys
        from bitrieve.methods import REGISTRY, get_method
        assert not any(m.startswith("bitrieve.methods.") and m != "bitrieve.methods.base" for m in sys.modules)
        assert list(REGISTRY)[:3] == ["cca_itq", "agch", "ucmfh"] and "torch" not in sys.modules
        get_method("cca_itq")
        print(sorted(m for m in sys.modules if m.startswith("bitrieve.methods.")))
    """)
    env = {k: v for k, v in os.environ.items() if k != "BITRIEVE_METHOD_MODULES"}  # no tests' method here
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["['bitrieve.methods.base',", "'bitrieve.methods.cca_itq']"]


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown method 'djsr'; known methods: agch, agch_fusion_balanced, cca_itq"):
        get_method("djsr")


def test_a_broken_module_is_reported_by_name_only_when_asked_for(tmp_path, monkeypatch):
    (tmp_path / "broken_method.py").write_text("raise ImportError('needs the package frobnicate')\n")
    (tmp_path / "fine_method.py").write_text(textwrap.dedent("""
        from bitrieve.methods import register_method
        from bitrieve.methods.base import HashMethod

        @register_method("fine")
        class Fine(HashMethod):
            name = "fine"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BITRIEVE_METHOD_MODULES", "broken_method,fine_method")
    reg = MethodRegistry()
    monkeypatch.setattr("bitrieve.methods.REGISTRY", reg)  # the decorator registers into this one
    assert reg["fine"].__name__ == "Fine"  # the broken module did not stop the others
    assert reg.failed == {"broken_method": "ImportError: needs the package frobnicate"}
    with pytest.raises(KeyError, match=r"unknown method 'gone'.*broken_method failed to import \(ImportError: "
                                       r"needs the package frobnicate\)"):
        reg["gone"]


def test_a_module_of_the_method_name_that_fails_names_its_error(monkeypatch):
    reg = MethodRegistry()
    reg.failed["bitrieve.methods.dsh"] = "ModuleNotFoundError: No module named 'torchvision'"
    with pytest.raises(KeyError, match=r"method 'dsh' could not be imported \(bitrieve.methods.dsh: "
                                       r"ModuleNotFoundError: No module named 'torchvision'\)"):
        reg["dsh"]


def test_one_name_twice_is_an_error_and_the_name_attribute_must_match():
    get_method("djsrh")
    with pytest.raises(ValueError, match="registered twice"):
        @register_method("djsrh")
        class Other:  # noqa: F811
            name = "djsrh"
    with pytest.raises(ValueError, match=r"@register_method\('x'\) on .*Named, whose name is 'y'"):
        @register_method("x")
        class Named:
            name = "y"
