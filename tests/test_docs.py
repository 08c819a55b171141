"""The README and docs/ say what the code does: the error table in docs/contract.md is
tests/error_cases.py, its schemas are csrc/operators.h's, the README's example runs, its two
commands are the ones CI runs (.ci/run reads them from the README), it stays short, every
repository path the docs name exists, and nothing in the package points outside the repository."""

import re
from pathlib import Path

import error_cases

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS.append(ROOT / "bench" / "results" / "README.md")
# What a doc may name that is not a file of the repository: what a build, a run or a user makes,
# and torch's and SGLang's own files.
NOT_OURS = ("build/", "dist/", "DIR/", "/opt/", "/tmp/", "torch/", "sglang/")


def test_error_table_is_the_tested_table():
    contract = (ROOT / "docs" / "contract.md").read_text()
    table = contract.split("<!-- errors:begin -->\n")[1].split("<!-- errors:end -->")[0]
    assert table.strip() == error_cases.markdown_table(), (
        "regenerate the error table of docs/contract.md: python tests/error_cases.py"
    )


def test_contract_quotes_the_schemas():
    """docs/contract.md's schema block is operators.h's two schemas, spaces aside."""
    header = (ROOT / "mamba_state_ext" / "csrc" / "operators.h").read_text()
    contract = (ROOT / "docs" / "contract.md").read_text()
    quoted = " ".join(contract.split("```\n")[1].split())
    for name in ("kUpdateSchema", "kCopySlotsSchema"):
        literal = re.search(rf"{name} =\s*((?:\"[^\"]*\"\s*)+);", header).group(1)
        schema = "".join(re.findall(r'"([^"]*)"', literal))
        assert f"mamba_state::{' '.join(schema.split())}" in quoted, name


def test_example_runs():
    example = re.search(r"## Use\n.*?```python\n(.*?)```", README, re.S).group(1)
    exec(compile(example, "README.md example", "exec"), {})


def test_ci_commands_are_marked():
    for tag in ("setup", "test"):
        assert re.search(rf"<!-- ci:{tag} -->\n```bash\n[^\n]+\n```", README), tag


def test_the_readme_is_short():
    assert len(README.splitlines()) < 200, "the README is for users: move details to docs/"


def named_paths(text: str):
    """Repository paths a doc names: in backticks or as link targets, with a folder in them."""
    for match in re.finditer(r"`([^`\s]+)`|\]\(([^)\s]+)\)", text):
        path = (match.group(1) or match.group(2)).rstrip(".,:;")
        if "/" in path and re.fullmatch(r"[\w./-]+", path) and not path.startswith(("http", "-")):
            yield path


def test_every_path_the_docs_name_exists():
    missing = []
    for doc in DOCS:
        for path in named_paths(doc.read_text()):
            if path.startswith(NOT_OURS) or "*" in path or path.endswith("/"):
                continue
            candidates = [ROOT / path, doc.parent / path, ROOT / "mamba_state_ext" / path]
            if not any(candidate.exists() for candidate in candidates):
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert not missing, missing


def test_the_package_points_nowhere_outside_the_repository():
    package = ROOT / "mamba_state_ext"
    outside = []
    for path in package.rglob("*"):
        if path.suffix not in (".py", ".h", ".cpp", ".cu", ".json"):
            continue
        text = path.read_text()
        for name in ("DESIGN.md", "../shared"):  # the brief beside the repository
            if name in text:
                outside.append(f"{path.relative_to(ROOT)}: {name}")
        # A relative path that climbs (an #include of "../call.h", say) must land in the
        # repository; an absolute one is a machine's, not the project's.
        for climb in re.findall(r"(?:\.\./)+[\w.-]+", text):
            if not (path.parent / climb).resolve().is_relative_to(ROOT):
                outside.append(f"{path.relative_to(ROOT)}: {climb}")
        for absolute in re.findall(r"[\"'`](/(?:work|home|root|tmp|mnt|opt)/[^\"'`]*)", text):
            outside.append(f"{path.relative_to(ROOT)}: {absolute}")
    assert not outside, outside
