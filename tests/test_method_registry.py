"""Methods register where they are defined (``@register_method``); lookups import lazily; a broken module is
reported by name when asked for, and never breaks the others."""

import os
import subprocess
import sys
import textwrap

import pytest

from pathlib import Path

import yaml

from bitrieve.methods import FAMILY_ORDER, REGISTRY, MethodRegistry, get_method, register_method

ROOT = Path(__file__).resolve().parents[1]


def _stored_method_names() -> set[str]:
    """Every method name a shipped config or a committed run record refers to (read from the files, not from the
    registry): these names must keep resolving, to a class in the module of their own name."""
    names = set()
    for path in [*ROOT.glob("configs/*.yaml"), *ROOT.glob("results/**/config.yaml")]:
        names.add(yaml.safe_load(path.read_text())["method"])
    return names


def test_every_stored_name_resolves_to_the_module_of_its_name():
    stored = _stored_method_names()
    assert len(stored) >= 11
    for name in stored:
        cls = get_method(name)
        assert cls.__module__ == f"bitrieve.methods.{name}" and cls.name == name
    assert stored <= set(REGISTRY)


def test_listing_is_by_family_then_name():
    names = list(REGISTRY)
    assert "toy_linear" in names  # the tests' method, registered through BITRIEVE_METHOD_MODULES (conftest.py)

    def rank(name):  # the rule, re-typed: known families in their order, then other families, then the name
        fam = get_method(name).family
        return (FAMILY_ORDER.index(fam) if fam in FAMILY_ORDER else len(FAMILY_ORDER), fam, name)

    assert names == sorted(names, key=rank)
    assert names.index("agch") < names.index("dsh") < names.index("vsepp")  # cross-modal, image, matching


def test_the_tests_method_is_registered_by_the_tests():
    assert get_method("toy_linear").__module__ == "toy_method"


def test_a_new_module_in_the_package_is_found_without_editing_a_list(tmp_path):
    """Package scan: a method file dropped into a copy of bitrieve/methods is listed and looked up by its name."""
    code = textwrap.dedent("""
        import bitrieve.methods as m, sys
        m.__path__.append(sys.argv[1])  # a second directory of the package, holding only the new file
        print(",".join(n for n in m.REGISTRY if n == "brand_new"), m.get_method("brand_new").__name__)
    """)
    (tmp_path / "brand_new.py").write_text(textwrap.dedent("""
        from bitrieve.methods import register_method
        from bitrieve.methods.base import HashMethod

        @register_method("brand_new")
        class BrandNew(HashMethod):
            name = "brand_new"
    """))
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["brand_new", "BrandNew"]


def test_an_installed_package_registers_through_its_entry_point(tmp_path):
    """The ``bitrieve.methods`` entry-point group: an installed distribution (its dist-info on sys.path, as pip
    leaves it) names the module that registers its method; no environment variable, no list."""
    dist = tmp_path / "my_hashing-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-hashing\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bitrieve.methods]\nmy_hashing = my_hashing\n")
    (tmp_path / "my_hashing.py").write_text(textwrap.dedent("""
        from bitrieve.methods import register_method
        from bitrieve.methods.base import HashMethod

        @register_method("my_hashing")
        class MyHashing(HashMethod):
            name = "my_hashing"
    """))
    code = "from bitrieve.methods import REGISTRY; print('my_hashing' in list(REGISTRY), REGISTRY['my_hashing'])"
    env = {**{k: v for k, v in os.environ.items() if k != "BITRIEVE_METHOD_MODULES"}, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "True" and "my_hashing.MyHashing" in out.stdout


def test_lookup_imports_only_the_named_module_and_help_imports_none():
    code = textwrap.dedent("""
        import sys
        from bitrieve.methods import get_method
        assert not any(m.startswith("bitrieve.methods.") and m != "bitrieve.methods.base" for m in sys.modules)
        get_method("cca_itq")
        print(sorted(m for m in sys.modules if m.startswith("bitrieve.methods.")))
    """)
    env = {k: v for k, v in os.environ.items() if k != "BITRIEVE_METHOD_MODULES"}  # no tests' method here
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["['bitrieve.methods.base',", "'bitrieve.methods.cca_itq']"]
    code = ("import sys; from bitrieve.cli import main; main(['--help'])\n"
            "print('METHODS', [m for m in sys.modules if m.startswith('bitrieve.methods.')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "METHODS []", out.stderr


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
