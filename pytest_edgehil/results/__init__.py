"""Results: records, the metric vocabulary, the results file, the merge gate, the summary and the report.

Nothing here imports pytest."""
