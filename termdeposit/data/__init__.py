"""Data in and out: the reference data set, reading and validating cohort files, safe exports."""
