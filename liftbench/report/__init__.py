"""Reporting: ``render`` (terminal tables, report.md and plots of a suite directory) and ``lifters``
(the cross-lifter comparison table). The one wing allowed to import another: ``papers``."""
