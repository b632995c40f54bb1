"""The ARDM maths (arXiv 2110.02037) with no file or network I/O: orders, objective, stages, planning, walks."""
