"""Generated data for the demo and the tests: feature sets with a planted signal and surveillance-
like videos."""
