"""Visual inspection: image features, defect classifier, anomaly model (good patches, plus a defect head)."""
