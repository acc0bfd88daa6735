"""The layers: the core never imports the shapes world; the shapes world plugs in through the public registries."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "trl_htgrpo"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module a file imports (relative imports resolved), at any depth of the file."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    if path.name == "__init__.py":
        package = module.removesuffix(".__init__")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            out.add(name)
            out |= {f"{name}.{a.name}" for a in node.names}
    return out


def test_no_core_module_imports_the_shapes_world():
    arrows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "toy" in path.relative_to(PACKAGE).parts:
            continue
        for name in imported_modules(path):
            if name == "trl_htgrpo.toy" or name.startswith("trl_htgrpo.toy."):
                arrows.append(f"{path.relative_to(PACKAGE.parent)} -> {name}")
    assert not arrows, "the core imports the shapes world:\n" + "\n".join(arrows)


def test_the_walk_sees_relative_imports(tmp_path):
    # the checker itself: a relative import of toy from a core module is an arrow
    names = imported_modules(PACKAGE / "toy" / "plugin.py")
    assert "trl_htgrpo.backbones.register_backbone" in names and "trl_htgrpo.toy.backbone" in names


def test_importing_the_library_does_not_load_the_shapes_world_until_asked():
    code = ("import sys, trl_htgrpo; assert 'trl_htgrpo.toy' not in sys.modules; "
            "from trl_htgrpo.plugins import resolve_model_name; p = resolve_model_name('shapes-mdm'); "
            "assert 'trl_htgrpo.toy' in sys.modules and p.endswith('shapes-mdm'); "
            "from trl_htgrpo.backbones import BACKBONES; from trl_htgrpo.rewards import DETECTORS; "
            "assert 'shapes_mdm' in BACKBONES and 'shapes' in DETECTORS")
    subprocess.run([sys.executable, "-c", code], check=True)
