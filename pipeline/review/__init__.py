"""Reading runs after the fact: the comparison report, the pull-request report and the sweeps' matrix."""
