"""The lecture, reproduced (fastnn.examples.lecture, the fastnn-lecture command): every
experiment runs at its reduced (--quick) size and its claim holds in numbers; the command
lists, runs one experiment, and writes a well-formed page, the PNGs and the JSON.

Everything runs once, through `fastnn-lecture all --quick --out DIR` on one thread
(training is bit-identical for a seed and a thread count, so the numbers are fixed; the
thresholds below sit far from the measured values, which are in the comments). The
exception is minibatches: it measures wall-clock time, so only ratios that are large
on any machine are asserted.
"""
import base64
import contextlib
import html.parser
import io
import json
import os
import subprocess
import sys
import tempfile

import pytest

import fastnn as fn
from fastnn.examples import lecture
from fastnn.examples.lecture import cli, report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.fixture
def one_thread():
    previous = fn.get_num_threads()
    yield
    fn.set_num_threads(previous)


@pytest.fixture(scope="module")
def lecture_run(tmp_path_factory):
    """(results by name, output directory, console output) of the quick run of all."""
    out = tmp_path_factory.mktemp("lecture")
    previous = fn.get_num_threads()
    try:
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            results = cli.main(["all", "--quick", "--seed", "0", "--threads", "1",
                                "--out", str(out)])
    finally:
        fn.set_num_threads(previous)
    return {r.name: r for r in results}, out, text.getvalue()


# -- the claims, one check per experiment (used by the tests below) ----------------------
def check_minibatches(r):
    n = r.numbers
    small, mid, large = (n[str(b)] for b in lecture.QUICK["minibatches"]["batch_sizes"])
    # Measured about 15x (59 µs vs 4 µs per image, one thread); 3x leaves room for a busy
    # machine. Batch 32 is already several times cheaper per image than batch 1 (9x).
    assert small["seconds_per_sample"] > 3 * large["seconds_per_sample"]
    assert small["seconds_per_sample"] > 2 * mid["seconds_per_sample"]
    # In the same time, small batches update far more often (~5,000 vs ~75).
    assert small["updates"] > 5 * large["updates"]
    for b in n.values():
        assert b["test_accuracy"] > 0.5          # every run learned something (~0.8)


def check_overfitting_vs_bad_training(r):
    deep, memo = r.numbers["deep_sigmoid"], r.numbers["memorizer"]
    assert deep["train_accuracy"][-1] < 0.2                       # 0.107: chance level
    assert deep["diagnosis"][0] == "not_good_on_training"
    assert "vanishing_gradients" in deep["diagnosis"]
    assert "overfitting" not in deep["diagnosis"]
    assert memo["train_accuracy"][-1] > 0.95                      # 0.995
    assert memo["train_accuracy"][-1] - memo["val_accuracy"][-1] > 0.15   # gap 0.25
    assert memo["diagnosis"][0] == "overfitting"


def check_deeper_not_better(r):
    depths = r.numbers["depths"]
    s = r.numbers["sigmoid"]
    acc = dict(zip(depths, s["train_accuracy"]))
    ratio = dict(zip(depths, s["first_to_last"]))
    assert acc[1] > 0.6                  # 0.743
    assert acc[8] < 0.2                  # 0.098: chance is 0.1
    # The first layer's share of the gradient falls with every layer: 0.94, 0.29, 0.016,
    # 3.8e-5 at depths 1, 2, 4, 8.
    assert all(a > b for a, b in zip(s["first_to_last"], s["first_to_last"][1:]))
    assert ratio[8] < 1e-3
    # Layer by layer too: the 8-layer net's gradient norms grow towards the output.
    norms = s["grad_norm"][depths.index(8)]
    assert norms[0] < norms[4] < norms[-1]


def check_relu_maxout(r):
    depths = r.numbers["depths"]
    i = depths.index(8)
    assert r.numbers["sigmoid"]["train_accuracy"][i] < 0.2       # 0.098
    for kind in ("relu", "maxout"):
        assert r.numbers[kind]["train_accuracy"][i] > 0.6        # 0.752 and 0.778
        assert r.numbers[kind]["diverged"] == []
        # No vanishing: the first layer gets a gradient as large as the output's (~2-3x).
        assert all(x > 0.3 for x in r.numbers[kind]["first_to_last"])


def check_optimizers(r):
    quad, fashion = r.numbers["quadratic"], r.numbers["fashion"]
    steps = {n: q["steps_to_target"] for n, q in quad.items()}
    # Same learning rate, the ill-conditioned quadratic: 56 vs 220 steps.
    assert steps["momentum"] is not None and steps["sgd"] is not None
    assert 2 * steps["momentum"] < steps["sgd"]
    assert steps["nesterov"] < steps["sgd"]
    assert all(s is not None for s in steps.values())     # every rule gets there
    for name, f in fashion.items():                        # and every rule learns
        losses = f["batch_loss"]
        assert sum(losses[-10:]) < 0.7 * sum(losses[:10]), name
    table = r.tables[0]
    formulas = {row[0]: row[1] for row in table.rows}
    assert formulas["Momentum"] == lecture.optimization.FORMULAS["momentum"]
    assert set(formulas) == set(lecture.optimization.LABELS.values())


def check_l1_vs_l2(r):
    none, l1, l2 = r.numbers["none"], r.numbers["L1"], r.numbers["L2"]
    assert l1["zero_fraction"] > l2["zero_fraction"] + 0.15   # 28% vs 1.4%
    assert l1["zero_fraction"] > none["zero_fraction"] + 0.15
    assert l2["mean_abs"] < 0.95 * none["mean_abs"]           # 0.038 vs 0.045
    assert l2["max_abs"] < none["max_abs"]
    for run in (none, l1, l2):
        assert run["test_accuracy"] > 0.7                     # ~0.76: the penalties are mild


def check_dropout_and_early_stopping(r):
    plain, drop, es = (r.numbers[k] for k in ("plain", "dropout", "early_stopping"))
    epochs = lecture.QUICK["dropout_and_early_stopping"]["epochs"]
    # EarlyStopping restored the best validation epoch of its run, and it stopped early.
    assert es["restored_epoch"] == es["best_val_epoch"]
    assert es["val_loss"][es["restored_epoch"] - 1] == min(es["val_loss"])
    assert es["epochs_run"] < epochs                          # 11 of 25
    # Same seed: until it stopped, the early-stopped run is the plain run, epoch by epoch.
    assert es["val_loss"] == plain["val_loss"][:es["epochs_run"]]
    # The plain run overfits (validation loss 0.82 at the end, 0.63 at best; gap 0.22);
    # dropout narrows the gap (0.045).
    assert plain["val_loss"][-1] > 1.1 * plain["best_val_loss"]
    assert plain["final_gap"] > 0.1
    assert drop["final_gap"] < plain["final_gap"] / 2
    assert "overfitting" in plain["diagnosis"]


CHECKS = {name: globals()["check_" + name] for name in lecture.EXPERIMENTS}


@pytest.mark.parametrize("name", list(lecture.EXPERIMENTS))
def test_the_claim_holds_in_numbers(lecture_run, name):
    results, _, _ = lecture_run
    CHECKS[name](results[name])


def test_relu_maxout_reuses_the_sigmoid_networks_of_deeper_not_better(lecture_run):
    results, _, _ = lecture_run
    assert results["relu_maxout"].numbers["sigmoid"] == \
        results["deeper_not_better"].numbers["sigmoid"]


def test_the_measured_sentence_is_written_from_the_numbers(lecture_run, one_thread):
    results, _, _ = lecture_run
    r = results["l1_vs_l2"]
    assert f"{100 * r.numbers['L1']['zero_fraction']:.1f}%" in r.measured
    es = results["dropout_and_early_stopping"].numbers["early_stopping"]
    assert f"restored the weights of epoch {es['restored_epoch']}" in \
        results["dropout_and_early_stopping"].measured
    steps = results["optimizers"].numbers["quadratic"]["momentum"]["steps_to_target"]
    assert f"{steps} steps (Momentum)" in results["optimizers"].measured
    # Another seed, other numbers, another sentence.
    fn.set_num_threads(1)
    other = lecture.run("l1_vs_l2", quick=True, seed=1, plot=False)
    assert other.numbers["L1"] != r.numbers["L1"]
    assert other.measured != r.measured
    CHECKS["l1_vs_l2"](other)


def test_a_network_that_diverges_is_reported_not_fatal(one_thread):
    # Learning rate 10: the maxout network's loss becomes NaN in its first epoch. The
    # sweep stops that network (on_nan="stop"), keeps going and says so.
    fn.set_num_threads(1)
    r = lecture.relu_maxout(depths=(2,), width=32, epochs=2, n_train=1000,
                            learning_rate=10.0, plot=False)
    assert r.numbers["maxout"]["diverged"] == [2]
    assert "Training diverged" in r.measured and "maxout with 2 hidden layers" in r.measured
    json.dumps(report.jsonable(r.numbers), allow_nan=False)


# -- the command -----------------------------------------------------------------------
def test_list_names_every_experiment(capsys):
    assert cli.main(["--list"]) == []
    out = capsys.readouterr().out
    for name in lecture.EXPERIMENTS:
        assert name in out


def test_one_experiment_prints_its_tables(capsys, one_thread, tmp_path):
    results = cli.main(["optimizers", "--quick", "--threads", "1"])
    out = capsys.readouterr().out
    assert [r.name for r in results] == ["optimizers"]
    assert "== Optimizers" in out and "This run:" in out and "update rule" in out
    assert lecture.optimization.FORMULAS["adam"] in out
    assert "1 experiment(s)" in out


@pytest.mark.parametrize("argv", [[], ["no_such_experiment"], ["all", "--threads", "0"],
                                  ["all", "--data", "medium"], ["optimizers", "--seed", "-1"],
                                  ["optimizers", "--quick", "--threads", "two"]])
def test_bad_command_lines_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "fastnn-lecture" in capsys.readouterr().err


def _run_python(*args):
    installed = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))
    env = dict(os.environ, PYTHONPATH=installed)
    return subprocess.run([sys.executable, *args], cwd=tempfile.gettempdir(), env=env,
                          capture_output=True, text=True, timeout=120)


def test_python_dash_m_runs_the_command_and_matplotlib_is_imported_lazily():
    proc = _run_python("-m", "fastnn.examples.lecture", "--list")
    assert proc.returncode == 0, proc.stderr
    assert "dropout_and_early_stopping" in proc.stdout
    proc = _run_python("-c", "import sys, fastnn.examples.lecture; "
                             "print('matplotlib' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_the_console_script_is_declared():
    tomllib = pytest.importorskip("tomllib")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "pyproject.toml")
    if not os.path.exists(path):
        pytest.skip("no pyproject.toml next to the tests")
    with open(path, "rb") as f:
        project = tomllib.load(f)
    assert project["project"]["scripts"]["fastnn-lecture"] == \
        "fastnn.examples.lecture.cli:cli"
    assert "fastnn.examples.lecture" in project["tool"]["setuptools"]["packages"]
    assert callable(cli.cli)


# -- the page and the JSON ---------------------------------------------------------------
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "source", "track", "wbr"}


class PageParser(html.parser.HTMLParser):
    """Checks that tags nest and close, and collects sections, images and tables."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []
        self.sections = {}          # id -> {"img": [src...], "table": n, "text": str}
        self.current = None
        self.doctype = None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.current = attrs.get("id")
            self.sections[self.current] = {"img": [], "table": 0, "text": ""}
        if self.current is not None:
            if tag == "img":
                self.sections[self.current]["img"].append(attrs.get("src", ""))
            if tag == "table":
                self.sections[self.current]["table"] += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag == "section":
            self.current = None

    def handle_data(self, data):
        if self.current is not None:
            self.sections[self.current]["text"] += data


def parse_page(path):
    parser = PageParser()
    with open(path, encoding="utf-8") as f:
        parser.feed(f.read())
    parser.close()
    assert parser.doctype is not None and parser.doctype.lower() == "doctype html"
    assert parser.errors == [] and parser.stack == []
    return parser


def test_the_page_is_well_formed_with_every_section_table_and_image(lecture_run):
    results, out, _ = lecture_run
    page = parse_page(out / report.PAGE)
    assert list(page.sections) == list(lecture.EXPERIMENTS)      # in the lecture's order
    for name, section in page.sections.items():
        r = results[name]
        assert section["table"] >= 2                  # the numbers and the settings
        assert "The slide:" in section["text"] and "This run:" in section["text"]
        assert " ".join(r.measured.split()) in " ".join(section["text"].split())
        if not _has_matplotlib():
            assert section["img"] == [] and "No plots" in section["text"]
            continue
        assert len(section["img"]) == len(r.figures) >= 1
        for src, figure in zip(section["img"], r.figures):
            prefix = "data:image/png;base64,"
            assert src.startswith(prefix)
            png = base64.b64decode(src[len(prefix):], validate=True)
            assert png.startswith(PNG_MAGIC) and len(png) > 10_000
            assert (out / f"{figure.name}.png").read_bytes() == png


def test_the_json_holds_every_figure_and_number(lecture_run):
    results, out, _ = lecture_run
    with open(out / report.DATA, encoding="utf-8") as f:
        data = json.load(f)
    assert list(data["experiments"]) == list(lecture.EXPERIMENTS)
    assert data["meta"]["threads"] == 1 and data["meta"]["size"] == "quick"
    for name, entry in data["experiments"].items():
        r = results[name]
        assert entry["measured"] == r.measured
        assert set(entry["figures"]) == {f.name for f in r.figures}
        assert all(fig["data"] for fig in entry["figures"].values())
        assert entry["numbers"] == report.jsonable(r.numbers)
    l1 = data["experiments"]["l1_vs_l2"]["figures"]["l1_vs_l2"]["data"]
    assert sum(l1["counts"]["L1"]) == 784 * 128       # every first-layer weight counted


def test_without_matplotlib_the_tables_print_and_the_page_says_why(
        tmp_path, monkeypatch, capsys, one_thread):
    # None in sys.modules makes `import matplotlib` raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    results = cli.main(["l1_vs_l2", "--quick", "--threads", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "zero fraction" in out and "matplotlib" in out
    assert results[0].plot_note and "matplotlib" in results[0].plot_note
    assert all(f.png is None for f in results[0].figures)
    page = parse_page(tmp_path / report.PAGE)
    section = page.sections["l1_vs_l2"]
    assert section["img"] == [] and section["table"] >= 2
    assert "No plots" in section["text"] and "matplotlib" in section["text"]
    assert not list(tmp_path.glob("*.png"))
    with open(tmp_path / report.DATA, encoding="utf-8") as f:
        assert json.load(f)["experiments"]["l1_vs_l2"]["figures"]["l1_vs_l2"]["data"]


def test_the_console_output_has_every_experiment(lecture_run):
    _, out, text = lecture_run
    for r in lecture_run[0].values():
        assert f"== {r.title}" in text and r.measured in text
    assert f"wrote {os.path.join(str(out), report.PAGE)}" in text
