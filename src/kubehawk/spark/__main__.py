"""``python -m kubehawk.spark`` / ``spark-submit .../kubehawk/spark/__main__.py``: ``kubehawk spark``."""

from kubehawk.spark.cli import spark

if __name__ == "__main__":
    spark(prog_name="kubehawk spark")
