"""The one compiled part: the line screen (src/kubehawk/_linescreen.c), optional.

A machine without a C compiler still installs kubehawk: the build of the extension may fail,
and kubehawk then decodes every line (see kubehawk.rules.linescreen).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("kubehawk._linescreen", ["src/kubehawk/_linescreen.c"], optional=True)])
