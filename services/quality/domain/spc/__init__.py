"""Statistical process control: control charts, run rules, process capability."""
