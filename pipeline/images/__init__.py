"""The digits as arrays: read from the IDX files, damaged (the damage families), drawn (grids and plots)."""
