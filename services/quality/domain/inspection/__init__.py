"""Visual inspection: image features, defect classifier, anomaly model with defect head."""
