"""Grading: the checks a case expects of its final answer. Pure: no I/O."""
