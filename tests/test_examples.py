"""The examples run (on the subset shipped inside fastnn, so no data needs installing)."""
import numpy as np

from fastnn.examples import hello_world, vanishing_gradients


def test_hello_world_on_the_shipped_subset(capsys):
    acc = hello_world.main(["--data", "small", "--epochs", "2", "--hidden", "64",
                            "--verbose", "1"])
    out = capsys.readouterr().out
    assert "the shipped subset" in out
    assert "Epoch 2/2" in out and "test accuracy" in out and "samples/s" in out
    assert acc > 0.7


def test_vanishing_gradients_shows_the_sigmoid_gradient_vanishing(capsys, tmp_path):
    assert vanishing_gradients.main(["--depth", "6", "--width", "32", "--epochs", "1",
                                     "--plot", str(tmp_path / "g.png")]) == 0
    out = capsys.readouterr().out
    ratios = [float(line.split(":")[1]) for line in out.splitlines()
              if "first/last layer ratio" in line]
    sigmoid, relu = ratios
    assert sigmoid < 1e-2 < relu           # orders of magnitude apart
    assert "vanishing_gradients" in out
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
