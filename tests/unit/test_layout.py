"""The layout's promises, checked: dependencies run one way, and every deploy runs every
process the product needs, with workers scaled on lag no further than the partitions."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# schemas <- session <- router <- channels <- streams: a package may import only those left of it.
ORDER = ["schemas", "session", "router", "channels", "streams"]
PROCESSES = {"worker", "gateway", "delivery"}


def _modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _imports(path: Path) -> set[str]:
    return {m.split(".")[0] for m in _modules(path)}


def test_dependencies_run_one_way() -> None:
    wrong = []
    for i, package in enumerate(ORDER):
        later = set(ORDER[i + 1 :])
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in _imports(path) & later:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert sorted(set(wrong)) == []


def test_production_code_never_imports_the_dev_harness() -> None:
    """streams/devkit (embedded broker and Redis, sample data) is for `omnirouter dev`, tests
    and benchmarks; the only production module that names it is the CLI's `dev` command."""
    wrong = []
    for package in ORDER:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("streams/devkit/") or rel == "streams/cli.py":
                continue
            if any(m.startswith("streams.devkit") for m in _modules(path)):
                wrong.append(rel)
    assert wrong == []


def test_compose_runs_every_process() -> None:
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    commands = {
        s["command"][1]
        for s in compose["services"].values()
        if isinstance(s.get("command"), list) and s["command"][0] == "omnirouter"
    }
    # Topics are created by the admin command, never by importing the dev harness.
    assert commands == PROCESSES | {"topics"}
    assert "devkit" not in (ROOT / "deploy/docker-compose.yml").read_text()


def test_k8s_runs_every_process_and_scales_workers_on_lag() -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/omnirouter.yaml").read_text()) if d]
    for d in docs:
        assert {"apiVersion", "kind", "metadata"} <= d.keys(), d
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    partitions = int(config["data"]["OMNIROUTER_PARTITIONS"])
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    commands = set()
    for d in deployments.values():
        spec = d["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        for c in spec["template"]["spec"]["containers"]:
            assert c["command"][0] == "omnirouter"
            commands.add(c["command"][1])
    assert commands == PROCESSES
    jobs = [d for d in docs if d["kind"] == "Job"]
    assert [
        c["command"][:2] for j in jobs for c in j["spec"]["template"]["spec"]["containers"]
    ] == [["omnirouter", "topics"]]
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert len(scaled) == 1
    so = scaled[0]["spec"]
    assert so["scaleTargetRef"]["name"] in deployments
    assert deployments[so["scaleTargetRef"]["name"]]["spec"]["template"]["spec"]["containers"][0][
        "command"
    ] == ["omnirouter", "worker"]
    assert so["minReplicaCount"] <= so["maxReplicaCount"] <= partitions
    assert {t["type"] for t in so["triggers"]} == {"kafka"}
    assert all(t["metadata"]["consumerGroup"] == "omnirouter" for t in so["triggers"])


def test_the_channel_catalog_covers_the_vocabulary() -> None:
    """One list of channels: every channel of schemas/vocabulary.py has an inbound adapter and
    an outbound sender, each in the channel's own package."""
    from channels import catalog
    from schemas.vocabulary import CHANNELS

    assert set(catalog.ADAPTERS) == set(CHANNELS) == set(catalog.SENDERS)
    for name in CHANNELS:
        assert catalog.ADAPTERS[name].__module__ == f"channels.{name}.adapter"
        assert catalog.SENDERS[name].__module__ == f"channels.{name}.send"
