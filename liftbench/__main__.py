from liftbench.cli import entry

entry()
