import sys

from fastnn.examples.lecture.cli import cli

sys.exit(cli())
