"""The noise-sweep and expansion figures: drawn from simulate() rows, saved, and redrawn by the scripts."""

import subprocess
import sys
from pathlib import Path

import pytest

from mke_theory.core.records import make_record, write_record
from mke_theory.results.plots import plot_expansion, plot_noise_sweep
from mke_theory.results.stats import records_frame
from mke_theory.toy.simulate import SimulateConfig, simulate

ROOT = Path(__file__).resolve().parents[2]
STUDENT_LABELS = ("UM student", "UM student (no reg.)", "MM student (MKE)", "MM student (no reg.)")


@pytest.fixture(scope="module")
def rows():
    return simulate(SimulateConfig(noise=(0.0, 0.2, 0.4), n_seeds=2, steps=200))


def _legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def _script(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "paper_figures" / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("suffix", ["png", "pdf"])
def test_noise_sweep_saves_two_panels_naming_every_student(rows, tmp_path, suffix):
    path = tmp_path / "deep" / f"sweep.{suffix}"
    fig = plot_noise_sweep(rows, path)
    assert path.stat().st_size > 0
    assert path.read_bytes()[:4] == (b"%PDF" if suffix == "pdf" else b"\x89PNG")
    assert len(fig.axes) == 2
    texts = _legend_texts(fig)
    for label in STUDENT_LABELS + ("pseudo labels (teacher)",):
        assert label in texts
    assert "gaussian" in fig.get_suptitle() and "symmetric" in fig.get_suptitle()
    assert fig.axes[0].get_xlabel() == "pseudo-label error η"


def test_noise_sweep_draws_bounds_only_where_recorded_and_says_why(rows):
    teacher = {r["config"]["eta"]: r["metrics"] for r in rows if r["method"] == "teacher"}
    fig = plot_noise_sweep(rows)
    texts = _legend_texts(fig)
    for space in ("um", "mm"):
        has_bound = any(f"{space}_bound" in m for m in teacher.values())
        assert (f"{space.upper()} bound (Wei et al. 2021, Thm 4.3)" in texts) == has_bound
    ax = fig.axes[0]
    assert ax.get_ylim()[1] >= 100 or all(m.get(f"{s}_bound", 0) < 1 for m in teacher.values() for s in ("um", "mm"))
    for line in ax.lines:  # bounds are clipped at 100 %
        y = line.get_ydata()
        assert all(v <= 100 for v in y if v == v)
    # without any bound in the domain the axes say so instead of drawing one
    stripped = [dict(r, metrics={k: v for k, v in r["metrics"].items() if not k.endswith("_bound")}) for r in rows]
    fig = plot_noise_sweep(stripped)
    notes = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "UM bound outside the theorem's domain" in notes and "for all η" in notes
    assert not any("Thm 4.3" in t for t in _legend_texts(fig))


def test_noise_sweep_reads_the_tidy_frame(rows):
    fig = plot_noise_sweep(records_frame(rows))
    assert len(fig.axes) == 2 and "MM student (MKE)" in _legend_texts(fig)


def test_records_of_two_sweeps_are_refused(rows):
    other = [dict(r, config=dict(r["config"], steps=999)) for r in rows]
    with pytest.raises(ValueError, match="steps"):
        plot_noise_sweep(rows + other)
    with pytest.raises(ValueError, match="several runs"):
        plot_noise_sweep(records_frame(rows + rows))


@pytest.mark.parametrize("suffix", ["png", "pdf"])
def test_expansion_saves_two_panels(rows, tmp_path, suffix):
    path = tmp_path / f"expansion.{suffix}"
    fig = plot_expansion(rows, path)
    assert path.stat().st_size > 0
    assert len(fig.axes) == 2
    texts = _legend_texts(fig)
    assert "Thm 4.3 needs c > 3" in texts
    assert any(t.startswith("UM space") for t in texts) and any(t.startswith("MM space") for t in texts)
    assert fig.axes[1].get_ylabel().startswith("separation μ")
    assert len(plot_expansion(records_frame(rows)).axes) == 2


@pytest.fixture(scope="module")
def run_folder(rows, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "simulate"
    for row in rows:
        write_record(make_record(**row), out)
    return out


@pytest.mark.parametrize("name", ["noise_sweep", "expansion_figure"])
def test_scripts_write_png_and_pdf(run_folder, tmp_path, name):
    done = _script(name, "--runs", run_folder, "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    for suffix in ("png", "pdf"):
        assert (tmp_path / f"{name}.{suffix}").stat().st_size > 0


@pytest.mark.parametrize("name", ["noise_sweep", "expansion_figure"])
def test_scripts_without_runs_name_the_command(tmp_path, name):
    done = _script(name, "--runs", tmp_path / "nothing", "--out", tmp_path)
    assert done.returncode == 0 and "no runs for simulate: run mke-theory simulate" in done.stdout
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("plot", [plot_noise_sweep, plot_expansion])
def test_the_readme_sweeps_title_fits_the_figure(plot):
    # bug caught: `mke-theory simulate --noise 0.1,0.2,0.3 --noise-model structured --generator shared-specific
    # --plot sweep.png` (the README's) had its one-line title clipped at both edges of the PNG
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rows = simulate(SimulateConfig(generator="shared-specific", noise=(0.1, 0.2, 0.3), noise_model="structured",
                                   n_seeds=2, steps=20))
    fig = plot(rows)
    FigureCanvasAgg(fig).draw()
    box = fig._suptitle.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, (box, fig.bbox)
    assert "shared-specific" in fig.get_suptitle() and "structured" in fig.get_suptitle()
    for ax in fig.axes:  # the title does not run into the panels' titles
        assert ax.title.get_window_extent().y1 < box.y0
