"""Quality service: statistical process control (and, later, visual inspection)."""
