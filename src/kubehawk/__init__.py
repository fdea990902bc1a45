"""kubehawk: catch the intruder in the Kubernetes audit log."""
