"""Supply-chain checks run by `make lint`: what we ship is pinned and above known advisories.

    .venv/bin/python deploy/supply_chain.py            # every check
    .venv/bin/python deploy/supply_chain.py --no-audit # without asking the advisory service

1. floors: each direct dependency's floor in pyproject.toml admits no version with an
   advisory listed in ADVISORIES below;
2. lock: requirements.lock (hashes, `make lock`) names every dependency of pyproject.toml and
   pins nothing below a fixed version;
3. images: every FROM, and every `image:` of the compose file and the Kubernetes manifests,
   is pinned by digest (a tag can be moved under us); the one exception is our own image,
   named `omnirouter` with no tag: compose builds it, and Kubernetes gets it only through
   the kustomization, whose `images:` entry must then carry the release's digest;
4. audit: pip-audit over the lock. pip-audit asks PyPI's per-release JSON API
   (/pypi/<name>/<version>/json); where that answers 404 for every release (the mirror these
   machines reach serves the per-project document only), the audit cannot see anything and
   says so, and the local table (1, 2) is what holds. Any vulnerability it does report fails.

ADVISORIES is kept by hand from the published advisories of our dependencies (refresh it
with the lock: docs/reliability.md, "Supply chain").
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"

# (package, first fixed version, advisory): every release below the fixed one is affected.
ADVISORIES: tuple[tuple[str, str, str], ...] = (
    ("aiohttp", "3.9.2", "CVE-2024-23334 static route path traversal"),
    ("aiohttp", "3.9.4", "CVE-2024-30251 multipart DoS"),
    ("aiohttp", "3.10.11", "CVE-2024-52304 request smuggling (chunk extensions)"),
    ("aiohttp", "3.12.14", "CVE-2025-53643 request smuggling (trailer sections)"),
    ("aiohttp", "3.13.3", "CVE-2025-69223 zip bomb, and the other advisories fixed in 3.13.3"),
    ("aiosmtpd", "1.4.5", "CVE-2024-27305 SMTP smuggling"),
    ("aiosmtpd", "1.4.6", "CVE-2024-34083 STARTTLS command injection"),
    ("orjson", "3.9.15", "CVE-2024-27454 unbounded recursion on nested input"),
    ("scikit-learn", "1.5.0", "CVE-2024-5206 stop words kept in TfidfVectorizer"),
    ("redis", "4.5.4", "CVE-2023-28858 async connection left open on cancel"),
    ("requests", "2.32.4", "CVE-2024-47081 .netrc credential leak"),
    ("urllib3", "2.5.0", "CVE-2025-50181 redirects not disabled for pool managers"),
    ("idna", "3.7", "CVE-2024-3651 quadratic encode"),
    ("certifi", "2024.7.4", "CVE-2024-39689 GLOBALTRUST roots"),
    ("setuptools", "78.1.1", "CVE-2025-47273 path traversal in PackageIndex"),
    ("werkzeug", "3.0.6", "CVE-2024-49767 multipart memory exhaustion"),
    ("jinja2", "3.1.6", "CVE-2025-27516 sandbox breakout via |attr"),
    ("pyyaml", "5.4", "CVE-2020-14343 full_load code execution"),
    ("h11", "0.16.0", "CVE-2025-43859 chunked body smuggling"),
    ("starlette", "0.47.2", "CVE-2025-54121 multipart blocks the event loop"),
)


def _name(n: str) -> str:
    return re.sub(r"[-_.]+", "-", n).lower()


def locked() -> dict[str, Version]:
    out = {}
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", line)
        if m:
            out[_name(m.group(1))] = Version(m.group(2))
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]


def check_floors(reqs: list[Requirement]) -> list[str]:
    """A floor (>=, ==, ~=) below a fixed version admits the vulnerable releases."""
    problems = []
    for req in reqs:
        floors = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
        floor = max(floors) if floors else None
        for pkg, fixed, advisory in ADVISORIES:
            if _name(req.name) == pkg and (floor is None or floor < Version(fixed)):
                problems.append(f"pyproject: {req} admits {pkg}<{fixed} ({advisory})")
    return problems


def check_lock(reqs: list[Requirement], pins: dict[str, Version]) -> list[str]:
    problems = [
        f"requirements.lock: {r.name} is not locked (run `make lock`)"
        for r in reqs
        if _name(r.name) not in pins
    ]
    for r in reqs:
        v = pins.get(_name(r.name))
        if v is not None and not r.specifier.contains(v, prereleases=True):
            problems.append(f"requirements.lock: {r.name}=={v} outside {r} (run `make lock`)")
    for pkg, fixed, advisory in ADVISORIES:
        v = pins.get(pkg)
        if v is not None and v < Version(fixed):
            problems.append(f"requirements.lock: {pkg}=={v} < {fixed} ({advisory})")
    return problems


_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# Our own image: built by compose from deploy/Dockerfile, given its digest by the release
# (`kustomize edit set image omnirouter=<registry>/omnirouter@sha256:...`) on Kubernetes.
OWN_IMAGE = "omnirouter"


def check_images(deploy: Path | None = None) -> list[str]:
    deploy = deploy or ROOT / "deploy"
    problems = []
    for path in sorted(deploy.rglob("Dockerfile*")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", line, re.IGNORECASE)
            if m and not _DIGEST.search(m.group(1)) and not m.group(1).startswith("$"):
                problems.append(
                    f"{path.relative_to(deploy.parent)}:{n}: FROM {m.group(1)} is not pinned"
                )
    manifests = [p for ext in ("*.yml", "*.yaml") for p in deploy.rglob(ext)]
    for path in sorted(manifests):
        text = path.read_text()
        for n, line in enumerate(text.splitlines(), 1):
            # Block style (`image: x`, `- image: x`) and flow style (`{image: x, ...}`).
            for m in re.finditer(r"(?:^|[\s{,-])image:\s*[\"']?([^\s\"'#,}]+)", line):
                image = m.group(1)
                if image == OWN_IMAGE or _DIGEST.search(image):
                    continue
                own = image.startswith(OWN_IMAGE + ":")
                problems.append(
                    f"{path.relative_to(deploy.parent)}:{n}: image {image} is not pinned by "
                    + ("digest" if not own else f"digest (our own image is `{OWN_IMAGE}`, no tag)")
                )
        if path.name == "kustomization.yaml":
            # Each images: entry names its digest (a newTag would move under us).
            for n, line in enumerate(text.splitlines(), 1):
                if re.match(r"^\s*newTag:", line):
                    problems.append(
                        f"{path.relative_to(deploy.parent)}:{n}: images use digest:, not newTag:"
                    )
                m = re.match(r"^\s*digest:\s*[\"']?(\S+?)[\"']?\s*$", line)
                if m and not re.fullmatch(r"sha256:[0-9a-f]{64}", m.group(1)):
                    problems.append(
                        f"{path.relative_to(deploy.parent)}:{n}: digest {m.group(1)} is not one"
                    )
    return problems


def audit() -> tuple[list[str], str]:
    """pip-audit over the lock; returns (problems, what it could see)."""
    cmd = [
        sys.executable,
        "-m",
        "pip_audit",
        "-r",
        str(LOCK),
        "--disable-pip",
        "--require-hashes",
        "--format",
        "json",
        "--progress-spinner",
        "off",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return [], "pip-audit: no answer within 300 s; local advisory table applied"
    try:
        report = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        return [f"pip-audit failed: {proc.stderr.strip()[-500:]}"], ""
    deps = report.get("dependencies", [])
    vulns = [
        f"pip-audit: {d['name']}=={d['version']} {v['id']} (fixed in {','.join(v['fix_versions'])})"
        for d in deps
        for v in d.get("vulns", [])
    ]
    audited = [d for d in deps if "skip_reason" not in d]
    seen = f"pip-audit: {len(audited)} of {len(deps)} locked packages audited"
    if deps and not audited:
        seen += " (the advisory service answered for none; local advisory table applied)"
    return vulns, seen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--no-audit", action="store_true")
    args = p.parse_args()
    reqs, pins = declared(), locked()
    problems = check_floors(reqs) + check_lock(reqs, pins) + check_images()
    print(f"supply chain: {len(pins)} locked packages, {len(ADVISORIES)} advisories checked")
    if not args.no_audit:
        found, seen = audit()
        problems += found
        print(seen)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
