"""Visual inspection: image features, defect classifier, good-only anomaly model."""
