"""The documentation holds together: every relative link of README.md and docs/*.md reaches a
file (and, with ``#anchor``, a heading of it), the README stays a first page whose test
commands are the ones .ci/run calls, and the code of docs/extending.md, the one home of the
add-your-own recipes, runs as written."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from support import ROOT

from pinn_exp.domains import Box
from pinn_exp.metrics import registry
from pinn_exp.ops import Laplacian
from pinn_exp.pdes import PDE
from pinn_exp.samplers import Sampler, Update

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXTENDING = ROOT / "docs" / "extending.md"
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (repeats get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(path: Path) -> list[str]:
    """Each relative link of ``path`` whose file or heading does not exist, as one line."""
    problems = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            target = match.group(1) or match.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, ...
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}: [{target}]"
            if not resolved.exists():
                problems.append(f"{where}: no such file {resolved}")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{where}: no heading #{anchor} in {resolved.name}")
    return problems


def test_slug_follows_github():
    assert slug("The default budget and the paper's budget") == (
        "the-default-budget-and-the-papers-budget"
    )
    assert slug("`burgers_table` (Burgers, N = 2000 only)") == "burgers_table-burgers-n--2000-only"
    assert slug("Throughput of the training loop") == "throughput-of-the-training-loop"


def test_broken_links_are_found(tmp_path, monkeypatch):
    """The check itself fails on a missing file and on a missing heading."""
    monkeypatch.setattr("test_docs.ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Other\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#a-section) [self](#page) [web](https://example.org/x)\n"
        "[gone](missing.md) [no heading](other.md#b-section)\n\n```\n[in code](nowhere.md)\n```\n"
    )
    problems = broken_links(page)
    assert len(problems) == 2
    assert "missing.md" in problems[0] and "#b-section" in problems[1]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_readme_is_a_first_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines; at most 220"


def _readme_test_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Tests\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_test_commands():
    """.ci/run calls the README's default and slow suites as the README writes them."""
    commands = _readme_test_commands()
    assert commands[:2] == ["python -m pytest", "python -m pytest -m slow"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in commands[:2]:
        assert command in ci, f".ci/run does not call the README's `{command}`"


def code_blocks(section: str, language: str) -> list[str]:
    """The ``language`` code blocks of the ``## section`` of docs/extending.md (its
    subsections included)."""
    text = EXTENDING.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```", body, flags=re.S | re.M)


def run_block(code: str, name: str) -> dict:
    namespace = {"__name__": name}
    exec(compile(code, f"docs/extending.md ({name})", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("method", ["autograd", "forward"])
def test_extending_pde_recipe_runs(method):
    """The PDE class of "Add your own PDE": the exact solution makes the residual vanish, the
    reference is the 101 x 101 grid and the soft boundary term targets the exact solution."""
    (code,) = code_blocks("Add your own PDE", "python")
    cls = run_block(code, "my_pdes")["PoissonPeak"]
    pde = cls(sigma=0.05, n_boundary=40)
    assert isinstance(pde, PDE) and pde.name == "poisson_peak"
    x = Box([0.0, 0.0], [1.0, 1.0]).sample(500, torch.Generator().manual_seed(0))
    x = torch.cat([x.double(), torch.tensor([[0.5, 0.5]], dtype=torch.float64)])
    x.requires_grad_(True)
    res = pde.residual(pde.exact, x, Laplacian(method))
    # f(c) = d / sigma^2 = 800 at the peak; the residual of the exact solution is round-off
    assert res.shape == (501,) and res.abs().max().item() <= 1e-8 * 800
    grid, u = pde.reference()
    assert grid.shape == (101 * 101, 2) and u.shape == (101 * 101,)
    assert u.max() == pytest.approx(1.0, abs=1e-15)  # the peak, exp(0), is a grid point
    (term,) = pde.boundary_terms(torch.Generator().manual_seed(0), "cpu", torch.float64)
    assert term.x.shape == (40, 2)
    torch.testing.assert_close(term.target.reshape(-1), pde.exact(term.x).reshape(-1))
    (config,) = code_blocks("Add your own PDE", "yaml")
    assert yaml.safe_load(config) == {"_target_": "my_pdes.PoissonPeak", "sigma": 0.05}


def test_extending_sampler_recipe_runs():
    """The sampler of "Add your own sampler": it keeps the ``keep`` share of the points with
    the largest residual, refills uniformly, and refuses bad values naming the key."""
    code = next(c for c in code_blocks("Add your own sampler", "python") if "class " in c)
    namespace = run_block(code, "my_samplers")
    (cls,) = [
        v
        for v in namespace.values()
        if isinstance(v, type) and issubclass(v, Sampler) and v is not Sampler
    ]
    (config,) = [c for c in code_blocks("Add your own sampler", "yaml") if "_target_" in c]
    options = yaml.safe_load(config)
    assert options.pop("_target_") == f"my_samplers.{cls.__name__}"
    assert set(options) <= set(inspect.signature(cls).parameters)  # the keys are its arguments
    sampler = cls(**options)
    sampler.bind(Box([0.0, 0.0], [1.0, 1.0]), 100, 2, torch.Generator().manual_seed(0))
    points = sampler.initial().points
    assert points.shape == (100, 2)
    update = sampler.update(points, lambda x, chunk_size=None: x[:, 0], 1)
    assert isinstance(update, Update) and update.points.shape == (100, 2)
    kept = round(options["keep"] * 100)
    top = torch.sort(points[:, 0], descending=True).values[:kept]
    torch.testing.assert_close(torch.sort(update.points[:kept, 0], descending=True).values, top)
    assert update.stats == {"n_kept": kept}
    with pytest.raises(ValueError, match=r"sampler\.keep=1\.5"):
        cls(keep=1.5)
    with pytest.raises(ValueError, match=r"n_points=10 .*sampler\.keep=0\.01"):
        cls(keep=0.01).bind(Box([0.0], [1.0]), 10, 2, torch.Generator())


def test_extending_metric_recipe_runs():
    """The metric of "Add your own metric" registers and computes the RMS error."""
    (code,) = code_blocks("Add your own metric", "python")
    assert "rms_error" not in registry.METRICS
    try:
        run_block(code, "my_metrics")
        metric = registry.get("rms_error")
        ev = registry.Evaluation(
            prediction=torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64),
            reference=torch.tensor([1.0, 0.0, 3.0, 0.0], dtype=torch.float64),
            x_test=torch.zeros(4, 1),
            points=torch.zeros(4, 1),
            probes=torch.zeros(4, 1),
            residual=lambda x: x.reshape(-1),
        )
        assert metric.fn(ev) == pytest.approx(math.sqrt((4 + 16) / 4), rel=1e-15)
    finally:
        registry.METRICS.pop("rms_error", None)
