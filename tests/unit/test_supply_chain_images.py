"""`make lint` refuses an image of deploy/ that is not pinned by digest (deploy/supply_chain.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("supply_chain", ROOT / "deploy" / "supply_chain.py")
assert _spec and _spec.loader
supply_chain = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(supply_chain)

PIN = "sha256:" + "a" * 64


def test_the_shipped_deploy_folder_is_pinned() -> None:
    assert supply_chain.check_images() == []


def test_tags_latest_and_fake_digests_are_refused(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    (deploy / "k8s").mkdir(parents=True)
    (deploy / "Dockerfile").write_text(f"FROM python:3.11-slim@{PIN}\nFROM debian:12\n")
    (deploy / "docker-compose.yml").write_text(
        f"services:\n  a: {{image: redis:7}}\n  b:\n    image: kafka:3@{PIN}\n"
    )
    (deploy / "k8s" / "app.yaml").write_text(
        "containers:\n  - image: omnirouter:latest\n  - image: omnirouter\n"
    )
    (deploy / "k8s" / "kustomization.yaml").write_text(
        "images:\n  - name: omnirouter\n    newTag: v1\n    digest: sha256:abc\n"
    )
    problems = supply_chain.check_images(deploy)
    assert len(problems) == 5, problems
    text = "\n".join(problems)
    for part in ("debian:12", "redis:7", "omnirouter:latest", "newTag", "sha256:abc"):
        assert part in text, (part, problems)
