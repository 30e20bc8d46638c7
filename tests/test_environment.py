"""environment.yml (conda) and pyproject.toml (pip) list the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _norm(req: str) -> str:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", req).groups()
    return re.sub(r"[-_.]+", "-", name).lower() + spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    from_pyproject = {_norm(r) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        from_pyproject |= {_norm(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    from_env = {_norm(r) for r in pip_sections[0] if not r.startswith("-e")}
    assert from_env == from_pyproject, (
        f"only in environment.yml: {from_env - from_pyproject}; only in pyproject.toml: {from_pyproject - from_env}"
    )


def test_torch_is_pinned_to_the_local_build():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps
    assert "torchvision==0.29.1" in deps
