"""The package's imports point downward only: cli -> serve -> training / eval / corpus -> core -> audio.

training, eval and corpus are siblings: none imports another (what two of them share belongs in core).

Every `import` and `from ... import` in src/ttt (at any depth, lazy imports inside functions included) is
parsed with `ast`; an import of a higher layer fails the test naming the file and line.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ttt"
# layer of each top-level part of the package; a module may import its own layer or any lower one
LAYERS = {"cli": 4, "serve": 3, "training": 2, "eval": 2, "corpus": 2, "core": 1, "audio": 0, "files": -1}


def part(module: str) -> str:
    """'ttt.training.loop' -> 'training'; a core module ('ttt.model', 'ttt') -> 'core'; `ttt.files` (standard
    library helpers every layer may use) -> 'files'."""
    names = module.split(".")
    if names[0] != "ttt" or len(names) == 1:
        return "core"
    if names[1] == "files":
        return "files"
    return names[1] if names[1] in LAYERS else "core"


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every ttt import in the file."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "ttt"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.split(".")[0] == "ttt":
                found.append((node.lineno, module))
    return found


def upward_imports() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        own = part(module_name(path))
        for line, module in imports(path):
            target = part(module)
            if target == own:
                continue
            if LAYERS[target] >= LAYERS[own]:
                bad.append(f"{path.relative_to(SRC.parent)}:{line}: {own} imports {module} ({target})")
    return bad


def test_no_module_imports_a_layer_above_it():
    assert upward_imports() == []


@pytest.mark.parametrize("source, expected", [
    ("from ttt.training.collate import collate\n", "training"),
    ("from ttt.cli.common import USER_ERRORS\n", "cli"),
    ("import ttt.corpus.build\n", "corpus"),
])
def test_an_upward_import_is_caught(tmp_path, monkeypatch, source, expected):
    """The checker itself: a core module importing training / cli / corpus is reported."""
    fake = tmp_path / "ttt"
    fake.mkdir()
    (fake / "model.py").write_text("def f():\n    " + source.replace("\n", "\n    ") + "pass\n")
    monkeypatch.setattr(__import__(__name__), "SRC", fake)
    bad = upward_imports()
    assert len(bad) == 1 and "core imports" in bad[0] and f"({expected})" in bad[0] and "model.py:2" in bad[0]


def test_inference_does_not_import_the_corpus_builder_nor_training():
    for name in ("model.py", "speech.py", "generate.py", "format.py", "config.py"):
        targets = {part(m) for _, m in imports(SRC / name)}
        assert targets <= {"core", "audio", "files"}, (name, targets)


def test_audio_imports_nothing_of_the_method():
    for path in (SRC / "audio").rglob("*.py"):
        assert {part(m) for _, m in imports(path)} <= {"audio", "files"}, path
