"""kubehawk's compiled parts, both optional (see kubehawk.native).

A machine without a C compiler still installs kubehawk: the extensions' build may fail, and
kubehawk then does the same work in Python (slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("kubehawk._linescreen", ["src/kubehawk/_linescreen.c"], optional=True),
    Extension("kubehawk._needles", ["src/kubehawk/_needles.c"], optional=True),
])
