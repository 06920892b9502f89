"""Run records -> paper tables: which sweeps fill which cells, the assembled markdown/CSV."""
