"""streams/nlu holds inference only; training code and corpora live in training/nlu, which the
packages never import and the wheel never ships."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.unit.test_layout import ORDER, ROOT, _imports

INFERENCE = {
    "__init__",
    "boundaries",
    "catalogue",
    "entities",
    "features",
    "model",
    "sentiment",
    "understand",
}


def test_no_package_imports_training() -> None:
    wrong = [
        str(path.relative_to(ROOT))
        for package in ORDER
        for path in sorted((ROOT / package).rglob("*.py"))
        if "training" in _imports(path)
    ]
    assert wrong == []


def test_streams_nlu_is_inference_only() -> None:
    nlu = ROOT / "streams" / "nlu"
    assert {p.stem for p in nlu.glob("*.py")} == INFERENCE
    assert not list(nlu.rglob("*.jsonl")), "corpora and eval sets belong in training/nlu/data"
    assert (nlu / "model" / "nlu.npz").is_file() and (nlu / "model" / "nlu.json").is_file()


def test_wheel_does_not_include_training() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include and not [p for p in include if p.startswith("train")]


def test_omnirouter_eval_delegates_to_the_checkout(tmp_path) -> None:
    """`omnirouter eval FILE --json` runs training.nlu.cli from the checkout, with a relative
    path resolved from the caller's directory."""
    f = tmp_path / "e.jsonl"
    f.write_text('{"text": "app闪退", "category": "技术故障类", "negative": true}\n', "utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "eval", "e.jsonl", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert '"macro_f1"' in out.stdout
