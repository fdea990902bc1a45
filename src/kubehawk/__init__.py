"""kubehawk: catch the intruder in the Kubernetes audit log.

Library use::

    import kubehawk
    for alert in kubehawk.detect(events, rules, config):
        print(alert.to_dict())
"""

from kubehawk.detect import Detector, detect

__all__ = ["Detector", "detect"]
__version__ = "0.1.0"
